/*
 * json.h: a small JSON reader and writer of the harness's own.
 *
 * Why not a common C JSON library: cJSON, Jansson, json-c, parson and most others store a
 * number as a double (53 bits of mantissa) or an int64_t. The protocol's handles, transaction
 * ids and PFNs are u64: 0xFFFFFFFFFFFFFFFF through a double becomes 18446744073709551616, and
 * through an int64_t it overflows. A harness must hold every u64 exactly, and must refuse
 * 4096.0 or 1e3 where an integer is required (the protocol accepts integer literals only),
 * which a reader that turns both into the same double cannot tell apart. So this reader keeps
 * an integer literal as a sign and a 64-bit magnitude (and its text when it is longer), and a
 * literal with a fraction or an exponent as a "float" that no parameter accepts.
 *
 * Bounds (docs/remote-protocol.md, "What a message may hold"), checked while reading:
 *   - UTF-8 only (overlong forms, surrogates and bytes past U+10FFFF are refused);
 *   - nesting of arrays and objects at most JSON_MAX_DEPTH, measured on the bytes before
 *     parsing (so the recursive parser never goes deeper);
 *   - integer literals of at most JSON_MAX_INT_DIGITS digits;
 *   - NaN, Infinity and numbers that overflow to them (1e999) refused.
 * The line length (8 MiB) is the framing's business (lines.c).
 *
 * Strings are decoded to WTF-8: UTF-8 that may also hold a lone surrogate, which JSON's
 * "\ud800" escape can carry; the writer escapes them back, so any id can be echoed.
 */
#ifndef VMBHARNESS_JSON_H
#define VMBHARNESS_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 32
#define JSON_MAX_INT_DIGITS 40

typedef enum {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_INT,    /* an integer literal: negative + magnitude when fits_u64, else text */
    JSON_FLOAT,  /* a literal with a fraction or an exponent: text */
    JSON_STRING, /* chars (WTF-8, NUL-terminated) and len */
    JSON_ARRAY,  /* first, count; elements chained by next */
    JSON_OBJECT  /* first, count; members chained by next, each with key */
} json_type;

typedef struct json_value json_value;
struct json_value {
    json_value *next;  /* the next element or member of the enclosing array or object */
    const char *key;   /* a member's name (WTF-8, NUL-terminated), else NULL */
    size_t key_len;
    union {
        uint64_t magnitude;                            /* JSON_INT that fits_u64 */
        struct { const char *text; size_t len; } lit;  /* JSON_FLOAT, or a JSON_INT that does not fit */
        struct { const char *chars; size_t len; } str; /* JSON_STRING */
        struct { json_value *first; size_t count; } items; /* JSON_ARRAY, JSON_OBJECT */
    } u;
    unsigned char type;     /* json_type */
    unsigned char negative; /* JSON_INT: a minus sign (-0 included) */
    unsigned char fits_u64; /* JSON_INT: the magnitude is at most 2^64 - 1 */
};

typedef struct json_doc json_doc;

enum { JSON_OK = 0, JSON_BAD = 1, JSON_NOMEM = 2 };

/* Parses text[0..len) (one message). JSON_OK: *doc holds it (free with json_free).
 * JSON_BAD: err says why, like the reference agent ("not JSON: Expecting value at column 1",
 * "nested 40 levels deep (at most 32)", "an integer of 50 digits (at most 40)",
 * "NaN is not a JSON number", "not JSON: not UTF-8 (byte 3)"). */
int json_parse(const char *text, size_t len, json_doc **doc, char *err, size_t err_size);
const json_value *json_root(const json_doc *doc);
void json_free(json_doc *doc);

/* The member `key` of an object (the last one, if the name repeats), or NULL. */
const json_value *json_get(const json_value *object, const char *key);
/* Whether v is the string s (exactly: same bytes, same length). */
int json_is_string(const json_value *v, const char *s);
/* Characters (code points) of a string. */
size_t json_string_chars(const json_value *v);
/* The value of one hex digit (either case), or -1 when c is not one. */
int json_hex_value(char c);

/* ---- writing --------------------------------------------------------------------------- */

/* A growable byte buffer. After a failed allocation `failed` is set and appends do nothing. */
typedef struct jbuf {
    char *data;
    size_t len, cap;
    int failed;
} jbuf;

void jbuf_init(jbuf *b);
void jbuf_free(jbuf *b);
void jbuf_clear(jbuf *b);
void jbuf_add(jbuf *b, const void *data, size_t len);
void jbuf_adds(jbuf *b, const char *s);
void jbuf_addc(jbuf *b, char c);
void jbuf_add_u64(jbuf *b, uint64_t value);
void jbuf_add_i64(jbuf *b, int64_t value);
/* A JSON string of WTF-8 text, escaped to ASCII (as Python's json.dumps(ensure_ascii=True)). */
void jbuf_add_string(jbuf *b, const char *chars, size_t len);
/* A JSON string of lowercase hex. */
void jbuf_add_hex(jbuf *b, const uint8_t *bytes, size_t len);
/* v written back as compact JSON (numbers as their canonical or original text). */
void jbuf_add_value(jbuf *b, const json_value *v);

#endif
