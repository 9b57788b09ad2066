"""``vmbspec sweep``: every single call of a bounded lattice, each on a fresh idle packet of an
open channel, checked against the spec.

* :mod:`.lattice`: the shapes, built from the bounds ``spec.arith`` computes for each chain;
* :mod:`.evaluate`: the spec's verdicts for a whole lattice at once (``spec.batch``), and the
  comparison of a batch of results against them;
* :mod:`.run`: running the shapes on a target (a native batch runner where there is one, else
  shape by shape through the target interface, checked by ``conformance.driver``);
* :mod:`.report`: the claim, the failures grouped by requirement, JSON and Markdown.
"""
