"""The Z3 model: properties of ``spec.arith`` proved over 64-bit bit-vectors.

Theory of operation
-------------------
:mod:`spec.arith` writes every offset, length and page formula once, generic over an
:class:`~spec.arith.Arith`. The executable spec runs them on Python ints (``PyArith``); this
package runs *the same functions* on Z3 bit-vectors (:class:`~spec.proofs.z3arith.Z3Arith`) and
asks the solver whether a named property can fail for any input. Nothing here restates a
formula of the spec: a property's claim is a plain statement about the spec's outputs (which
PFN indices a range names, how many bytes it covers), and its premise is the spec's own
acceptance predicate.

The rules this package keeps (STYLE.md, "The Z3 model"):

* One named property at a time, each in its own solver frame with a timeout
  (:mod:`spec.proofs.properties`).
* No vacuous proofs: before a claim is checked, a *cover* query shows that its premise (and any
  extra cover goal the property names) is satisfiable; an unreachable premise is a failure.
* Every counterexample is replayed through the executable spec on Python ints and printed as a
  concrete MDL and call.
* Shifts, masks, adds and compares only; inputs are UINT32 words zero-extended to 64 bits.

Modules: :mod:`~spec.proofs.z3arith` (the Arith over Z3), :mod:`~spec.proofs.properties`
(P1-P11 and the runner), :mod:`~spec.proofs.boundaries` (boundary vectors for the suite),
:mod:`~spec.proofs.check` ("prove your own check") and :mod:`~spec.proofs.examples` (the two
checks the documentation shows).
"""
