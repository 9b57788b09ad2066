/*
 * json.c: the reader and writer of json.h. The reader is a recursive-descent parser over one
 * line, allocating its values in an arena freed at once; its error texts follow Python's json
 * module (the reference agent's), so both agents explain a bad line the same way.
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the arena --------------------------------------------------------------------------- */

typedef struct block {
    struct block *prev;
    size_t used, size;
    /* the bytes follow, aligned as a double/pointer is */
    union { double d; void *p; uint64_t u; } align[1];
} block;

struct json_doc {
    block *blocks;
    json_value *root;
};

#define BLOCK_BYTES ((size_t)64 * 1024)

static void *arena_alloc(json_doc *doc, size_t size)
{
    block *b = doc->blocks;
    size_t rounded = (size + 7u) & ~(size_t)7u;
    if (rounded < size)
        return NULL;
    if (b == NULL || b->size - b->used < rounded) {
        size_t bytes = rounded > BLOCK_BYTES ? rounded : BLOCK_BYTES;
        block *fresh;
        if (bytes > (size_t)-1 - sizeof(block))
            return NULL;
        fresh = (block *)malloc(sizeof(block) + bytes);
        if (fresh == NULL)
            return NULL;
        fresh->prev = b;
        fresh->used = 0;
        fresh->size = bytes;
        doc->blocks = b = fresh;
    }
    {
        char *at = (char *)b->align + b->used;
        b->used += rounded;
        return at;
    }
}

void json_free(json_doc *doc)
{
    block *b;
    if (doc == NULL)
        return;
    b = doc->blocks;
    while (b != NULL) {
        block *prev = b->prev;
        free(b);
        b = prev;
    }
    free(doc);
}

const json_value *json_root(const json_doc *doc) { return doc->root; }

/* ---- checks on the bytes ------------------------------------------------------------------ */

/* The index of the first byte of the first invalid UTF-8 sequence, or -1 when all is valid
 * (the rules of Python's strict decoder: no overlong forms, no surrogates, nothing past
 * U+10FFFF). */
static long utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        unsigned char low = 0x80, high = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                low = 0xA0;
            else if (c == 0xED)
                high = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                low = 0x90;
            else if (c == 0xF4)
                high = 0x8F;
        } else
            return (long)i;
        if (len - i <= need)
            return (long)i;
        if (s[i + 1] < low || s[i + 1] > high)
            return (long)i;
        if (need >= 2 && (s[i + 2] < 0x80 || s[i + 2] > 0xBF))
            return (long)i;
        if (need == 3 && (s[i + 3] < 0x80 || s[i + 3] > 0xBF))
            return (long)i;
        i += need + 1;
    }
    return -1;
}

/* How deep arrays and objects nest, from the bytes, brackets inside strings not counted; for
 * a text that is not JSON an estimate, enough to refuse it. (As the reference agent: an
 * unterminated string's quote is an ordinary byte.) */
static long nesting_depth(const char *s, size_t len)
{
    size_t i = 0;
    long depth = 0, deepest = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < len && s[j] != '"') {
                if (s[j] == '\\' && j + 1 < len)
                    j++;
                j++;
            }
            if (j < len) { /* a whole string: skip it */
                i = j + 1;
                continue;
            }
        } else if (c == '[' || c == '{') {
            depth++;
            if (depth > deepest)
                deepest = depth;
        } else if (c == ']' || c == '}') {
            depth--; /* may go below 0 on a text that is not JSON, as the reference's count */
        }
        i++;
    }
    return deepest;
}

/* ---- the parser -------------------------------------------------------------------------- */

typedef struct parser {
    const char *s;
    size_t len, pos;
    json_doc *doc;
    char *err;
    size_t err_size;
    int status; /* JSON_OK until something fails */
    int depth;
} parser;

static size_t column_of(const parser *p, size_t pos)
{
    size_t i, column = 1;
    for (i = 0; i < pos && i < p->len; i++)
        if (((unsigned char)p->s[i] & 0xC0) != 0x80)
            column++;
    return column;
}

static int fail(parser *p, const char *what, size_t pos)
{
    if (p->status == JSON_OK) {
        p->status = JSON_BAD;
        snprintf(p->err, p->err_size, "not JSON: %s at column %lu", what,
                 (unsigned long)column_of(p, pos));
    }
    return -1;
}

static int fail_text(parser *p, const char *text)
{
    if (p->status == JSON_OK) {
        p->status = JSON_BAD;
        snprintf(p->err, p->err_size, "%s", text);
    }
    return -1;
}

static int out_of_memory(parser *p)
{
    if (p->status == JSON_OK) {
        p->status = JSON_NOMEM;
        snprintf(p->err, p->err_size, "out of memory while reading the message");
    }
    return -1;
}

static void skip_space(parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int starts_with(const parser *p, const char *word)
{
    size_t n = strlen(word);
    return p->len - p->pos >= n && memcmp(p->s + p->pos, word, n) == 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int json_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static long read_u4(const parser *p, size_t at)
{
    long value = 0;
    size_t i;
    if (p->len - at < 4 || at > p->len)
        return -1;
    for (i = 0; i < 4; i++) {
        int h = json_hex_value(p->s[at + i]);
        if (h < 0)
            return -1;
        value = value * 16 + h;
    }
    return value;
}

/* Appends code point cp as WTF-8 (surrogates allowed) at out; returns bytes written. */
static size_t put_wtf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at p->pos (the opening quote). Its decoded text goes into the arena. */
static int parse_string(parser *p, const char **chars, size_t *out_len)
{
    size_t start = p->pos, i = p->pos + 1, end;
    char *out;
    size_t n = 0;
    /* Pass 1: find the closing quote, refusing raw control characters. */
    for (;;) {
        unsigned char c;
        if (i >= p->len)
            return fail(p, "Unterminated string starting at", start);
        c = (unsigned char)p->s[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(p, "Invalid control character at", i);
        if (c == '\\') {
            if (i + 1 >= p->len)
                return fail(p, "Unterminated string starting at", start);
            i += 2;
            continue;
        }
        i++;
    }
    end = i;
    out = (char *)arena_alloc(p->doc, end - start);
    if (out == NULL)
        return out_of_memory(p);
    /* Pass 2: decode the escapes. */
    for (i = start + 1; i < end;) {
        char c = p->s[i];
        if (c != '\\') {
            out[n++] = c;
            i++;
            continue;
        }
        c = p->s[i + 1];
        switch (c) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            long cp = read_u4(p, i + 2);
            if (cp < 0 || i + 6 > end)
                return fail(p, "Invalid \\uXXXX escape", i);
            i += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < end && p->s[i] == '\\'
                && p->s[i + 1] == 'u') {
                long low = read_u4(p, i + 2);
                if (low < 0 || i + 6 > end)
                    return fail(p, "Invalid \\uXXXX escape", i);
                if (low >= 0xDC00 && low <= 0xDFFF) {
                    cp = 0x10000 + (((cp - 0xD800) << 10) | (low - 0xDC00));
                    i += 6;
                }
            }
            n += put_wtf8(out + n, (unsigned long)cp);
            continue;
        }
        default:
            return fail(p, "Invalid \\escape", i);
        }
        i += 2;
    }
    out[n] = '\0';
    p->pos = end + 1;
    *chars = out;
    *out_len = n;
    return 0;
}

static int parse_number(parser *p, json_value *v)
{
    size_t start = p->pos, i = p->pos, digits_start, digits;
    int is_float = 0;
    if (p->s[i] == '-')
        i++;
    digits_start = i;
    if (i >= p->len || !is_digit(p->s[i]))
        return fail(p, "Expecting value", start);
    if (p->s[i] == '0')
        i++;
    else
        while (i < p->len && is_digit(p->s[i]))
            i++;
    digits = i - digits_start;
    if (i + 1 < p->len && p->s[i] == '.' && is_digit(p->s[i + 1])) {
        is_float = 1;
        i += 2;
        while (i < p->len && is_digit(p->s[i]))
            i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        size_t j = i + 1;
        if (j < p->len && (p->s[j] == '+' || p->s[j] == '-'))
            j++;
        if (j < p->len && is_digit(p->s[j])) {
            is_float = 1;
            while (j < p->len && is_digit(p->s[j]))
                j++;
            i = j;
        }
    }
    p->pos = i;
    if (is_float) {
        /* Only to refuse an overflow to infinity, as the reference agent does; the value is
         * never used (no parameter takes a float). */
        char *copy = (char *)malloc(i - start + 1);
        double value;
        if (copy == NULL)
            return out_of_memory(p);
        memcpy(copy, p->s + start, i - start);
        copy[i - start] = '\0';
        value = strtod(copy, NULL);
        free(copy);
        if (value == HUGE_VAL || value == -HUGE_VAL) {
            char text[96];
            int shown = i - start < 40 ? (int)(i - start) : 40;
            snprintf(text, sizeof text, "the number %.*s overflows", shown, p->s + start);
            return fail_text(p, text);
        }
        v->type = JSON_FLOAT;
        v->u.lit.text = p->s + start;
        v->u.lit.len = i - start;
        return 0;
    }
    if (digits > JSON_MAX_INT_DIGITS) {
        char text[96];
        snprintf(text, sizeof text, "an integer of %lu digits (at most %d)",
                 (unsigned long)digits, JSON_MAX_INT_DIGITS);
        return fail_text(p, text);
    }
    v->type = JSON_INT;
    v->negative = (unsigned char)(p->s[start] == '-');
    v->fits_u64 = 1;
    {
        uint64_t magnitude = 0;
        size_t k;
        for (k = digits_start; k < i; k++) {
            unsigned d = (unsigned)(p->s[k] - '0');
            if (magnitude > (UINT64_MAX - d) / 10u) {
                v->fits_u64 = 0;
                break;
            }
            magnitude = magnitude * 10u + d;
        }
        if (v->fits_u64)
            v->u.magnitude = magnitude;
        else {
            v->u.lit.text = p->s + start;
            v->u.lit.len = i - start;
        }
    }
    return 0;
}

static int parse_value(parser *p, json_value *v);

static int parse_array(parser *p, json_value *v)
{
    json_value **tail = &v->u.items.first;
    v->type = JSON_ARRAY;
    p->pos++;
    skip_space(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return 0;
    }
    for (;;) {
        json_value *item = (json_value *)arena_alloc(p->doc, sizeof *item);
        if (item == NULL)
            return out_of_memory(p);
        memset(item, 0, sizeof *item);
        if (parse_value(p, item) != 0)
            return -1;
        *tail = item;
        tail = &item->next;
        v->u.items.count++;
        skip_space(p);
        if (p->pos < p->len && p->s[p->pos] == ']') {
            p->pos++;
            return 0;
        }
        if (p->pos >= p->len || p->s[p->pos] != ',')
            return fail(p, "Expecting ',' delimiter", p->pos);
        p->pos++;
    }
}

static int parse_object(parser *p, json_value *v)
{
    json_value **tail = &v->u.items.first;
    v->type = JSON_OBJECT;
    p->pos++;
    skip_space(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return 0;
    }
    for (;;) {
        json_value *member;
        const char *key;
        size_t key_len;
        skip_space(p);
        if (p->pos >= p->len || p->s[p->pos] != '"')
            return fail(p, "Expecting property name enclosed in double quotes", p->pos);
        if (parse_string(p, &key, &key_len) != 0)
            return -1;
        skip_space(p);
        if (p->pos >= p->len || p->s[p->pos] != ':')
            return fail(p, "Expecting ':' delimiter", p->pos);
        p->pos++;
        member = (json_value *)arena_alloc(p->doc, sizeof *member);
        if (member == NULL)
            return out_of_memory(p);
        memset(member, 0, sizeof *member);
        if (parse_value(p, member) != 0)
            return -1;
        member->key = key;
        member->key_len = key_len;
        *tail = member;
        tail = &member->next;
        v->u.items.count++;
        skip_space(p);
        if (p->pos < p->len && p->s[p->pos] == '}') {
            p->pos++;
            return 0;
        }
        if (p->pos >= p->len || p->s[p->pos] != ',')
            return fail(p, "Expecting ',' delimiter", p->pos);
        p->pos++;
    }
}

static int parse_value(parser *p, json_value *v)
{
    char c;
    int result;
    skip_space(p);
    if (p->pos >= p->len)
        return fail(p, "Expecting value", p->pos);
    c = p->s[p->pos];
    switch (c) {
    case '[':
    case '{':
        if (++p->depth > JSON_MAX_DEPTH) /* unreachable after the byte scan; kept as a guard */
            return fail_text(p, "nested too deep");
        result = c == '[' ? parse_array(p, v) : parse_object(p, v);
        p->depth--;
        return result;
    case '"':
        v->type = JSON_STRING;
        return parse_string(p, &v->u.str.chars, &v->u.str.len);
    case 'n':
        if (!starts_with(p, "null"))
            break;
        v->type = JSON_NULL;
        p->pos += 4;
        return 0;
    case 't':
        if (!starts_with(p, "true"))
            break;
        v->type = JSON_TRUE;
        p->pos += 4;
        return 0;
    case 'f':
        if (!starts_with(p, "false"))
            break;
        v->type = JSON_FALSE;
        p->pos += 5;
        return 0;
    case 'N':
        if (starts_with(p, "NaN"))
            return fail_text(p, "NaN is not a JSON number");
        break;
    case 'I':
        if (starts_with(p, "Infinity"))
            return fail_text(p, "Infinity is not a JSON number");
        break;
    case '-':
        if (starts_with(p, "-Infinity"))
            return fail_text(p, "-Infinity is not a JSON number");
        return parse_number(p, v);
    default:
        if (is_digit(c))
            return parse_number(p, v);
        break;
    }
    return fail(p, "Expecting value", p->pos);
}

int json_parse(const char *text, size_t len, json_doc **out, char *err, size_t err_size)
{
    parser p;
    json_doc *doc;
    long bad = utf8_invalid_at((const unsigned char *)text, len);
    long depth;
    *out = NULL;
    if (bad >= 0) {
        snprintf(err, err_size, "not JSON: not UTF-8 (byte %ld)", bad);
        return JSON_BAD;
    }
    depth = nesting_depth(text, len);
    if (depth > JSON_MAX_DEPTH) {
        snprintf(err, err_size, "nested %ld levels deep (at most %d)", depth,
                 JSON_MAX_DEPTH);
        return JSON_BAD;
    }
    doc = (json_doc *)calloc(1, sizeof *doc);
    if (doc == NULL) {
        snprintf(err, err_size, "out of memory while reading the message");
        return JSON_NOMEM;
    }
    memset(&p, 0, sizeof p);
    p.s = text;
    p.len = len;
    p.doc = doc;
    p.err = err;
    p.err_size = err_size;
    doc->root = (json_value *)arena_alloc(doc, sizeof *doc->root);
    if (doc->root == NULL) {
        json_free(doc);
        snprintf(err, err_size, "out of memory while reading the message");
        return JSON_NOMEM;
    }
    memset(doc->root, 0, sizeof *doc->root);
    if (parse_value(&p, doc->root) == 0) {
        skip_space(&p);
        if (p.pos != p.len)
            fail(&p, "Extra data", p.pos);
    }
    if (p.status != JSON_OK) {
        json_free(doc);
        return p.status;
    }
    *out = doc;
    return JSON_OK;
}

const json_value *json_get(const json_value *object, const char *key)
{
    const json_value *member, *found = NULL;
    size_t n = strlen(key);
    if (object == NULL || object->type != JSON_OBJECT)
        return NULL;
    for (member = object->u.items.first; member != NULL; member = member->next)
        if (member->key_len == n && memcmp(member->key, key, n) == 0)
            found = member;
    return found;
}

int json_is_string(const json_value *v, const char *s)
{
    size_t n = strlen(s);
    return v != NULL && v->type == JSON_STRING && v->u.str.len == n
        && memcmp(v->u.str.chars, s, n) == 0;
}

size_t json_string_chars(const json_value *v)
{
    size_t i, count = 0;
    for (i = 0; i < v->u.str.len; i++)
        if (((unsigned char)v->u.str.chars[i] & 0xC0) != 0x80)
            count++;
    return count;
}

/* ---- the writer -------------------------------------------------------------------------- */

void jbuf_init(jbuf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

void jbuf_free(jbuf *b)
{
    free(b->data);
    jbuf_init(b);
}

void jbuf_clear(jbuf *b)
{
    b->len = 0;
    b->failed = 0;
}

static int jbuf_reserve(jbuf *b, size_t more)
{
    size_t want, cap;
    char *grown;
    if (b->failed)
        return -1;
    if (more <= b->cap - b->len)
        return 0;
    if (more > (size_t)-1 - b->len) {
        b->failed = 1;
        return -1;
    }
    want = b->len + more;
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > (size_t)-1 / 2 ? want : cap * 2;
    grown = (char *)realloc(b->data, cap);
    if (grown == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = grown;
    b->cap = cap;
    return 0;
}

void jbuf_add(jbuf *b, const void *data, size_t len)
{
    if (len == 0 || jbuf_reserve(b, len) != 0)
        return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void jbuf_adds(jbuf *b, const char *s) { jbuf_add(b, s, strlen(s)); }
void jbuf_addc(jbuf *b, char c) { jbuf_add(b, &c, 1); }

void jbuf_add_u64(jbuf *b, uint64_t value)
{
    char digits[24];
    size_t n = sizeof digits;
    do {
        digits[--n] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0);
    jbuf_add(b, digits + n, sizeof digits - n);
}

void jbuf_add_i64(jbuf *b, int64_t value)
{
    if (value < 0) {
        jbuf_addc(b, '-');
        jbuf_add_u64(b, (uint64_t)(-(value + 1)) + 1u);
    } else
        jbuf_add_u64(b, (uint64_t)value);
}

static const char HEX[] = "0123456789abcdef";

static void add_u4(jbuf *b, unsigned long unit)
{
    char text[6];
    text[0] = '\\';
    text[1] = 'u';
    text[2] = HEX[(unit >> 12) & 0xF];
    text[3] = HEX[(unit >> 8) & 0xF];
    text[4] = HEX[(unit >> 4) & 0xF];
    text[5] = HEX[unit & 0xF];
    jbuf_add(b, text, 6);
}

void jbuf_add_string(jbuf *b, const char *chars, size_t len)
{
    const unsigned char *s = (const unsigned char *)chars;
    size_t i = 0, run;
    jbuf_addc(b, '"');
    while (i < len) {
        unsigned long cp;
        unsigned char c = s[i];
        /* a run of printable ASCII goes in one piece */
        for (run = i; run < len && s[run] >= 0x20 && s[run] < 0x7F && s[run] != '"'
             && s[run] != '\\'; run++) {
        }
        if (run > i) {
            jbuf_add(b, s + i, run - i);
            i = run;
            continue;
        }
        if (c < 0x80) {
            cp = c;
            i += 1;
        } else if (c < 0xE0 && i + 1 < len) {
            cp = ((unsigned long)(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
            i += 2;
        } else if (c < 0xF0 && i + 2 < len) {
            cp = ((unsigned long)(c & 0x0F) << 12) | ((unsigned long)(s[i + 1] & 0x3F) << 6)
                | (s[i + 2] & 0x3F);
            i += 3;
        } else if (i + 3 < len) {
            cp = ((unsigned long)(c & 0x07) << 18) | ((unsigned long)(s[i + 1] & 0x3F) << 12)
                | ((unsigned long)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
            i += 4;
        } else { /* cannot happen for text the reader made; written as U+FFFD */
            cp = 0xFFFD;
            i += 1;
        }
        switch (cp) {
        case '"': jbuf_adds(b, "\\\""); break;
        case '\\': jbuf_adds(b, "\\\\"); break;
        case '\b': jbuf_adds(b, "\\b"); break;
        case '\f': jbuf_adds(b, "\\f"); break;
        case '\n': jbuf_adds(b, "\\n"); break;
        case '\r': jbuf_adds(b, "\\r"); break;
        case '\t': jbuf_adds(b, "\\t"); break;
        default:
            if (cp >= 0x10000) {
                cp -= 0x10000;
                add_u4(b, 0xD800 | (cp >> 10));
                add_u4(b, 0xDC00 | (cp & 0x3FF));
            } else
                add_u4(b, cp);
        }
    }
    jbuf_addc(b, '"');
}

void jbuf_add_hex(jbuf *b, const uint8_t *bytes, size_t len)
{
    size_t i;
    if (len > ((size_t)-1 - 2) / 2) {
        b->failed = 1;
        return;
    }
    if (jbuf_reserve(b, 2 * len + 2) != 0)
        return;
    b->data[b->len++] = '"';
    for (i = 0; i < len; i++) {
        b->data[b->len++] = HEX[bytes[i] >> 4];
        b->data[b->len++] = HEX[bytes[i] & 0xF];
    }
    b->data[b->len++] = '"';
}

void jbuf_add_value(jbuf *b, const json_value *v)
{
    const json_value *item;
    switch ((json_type)v->type) {
    case JSON_NULL: jbuf_adds(b, "null"); break;
    case JSON_FALSE: jbuf_adds(b, "false"); break;
    case JSON_TRUE: jbuf_adds(b, "true"); break;
    case JSON_INT:
        if (!v->fits_u64) {
            jbuf_add(b, v->u.lit.text, v->u.lit.len);
            break;
        }
        if (v->negative && v->u.magnitude != 0)
            jbuf_addc(b, '-');
        jbuf_add_u64(b, v->u.magnitude);
        break;
    case JSON_FLOAT: jbuf_add(b, v->u.lit.text, v->u.lit.len); break;
    case JSON_STRING: jbuf_add_string(b, v->u.str.chars, v->u.str.len); break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        jbuf_addc(b, v->type == JSON_ARRAY ? '[' : '{');
        for (item = v->u.items.first; item != NULL; item = item->next) {
            if (item != v->u.items.first)
                jbuf_addc(b, ',');
            if (v->type == JSON_OBJECT) {
                jbuf_add_string(b, item->key, item->key_len);
                jbuf_addc(b, ':');
            }
            jbuf_add_value(b, item);
        }
        jbuf_addc(b, v->type == JSON_ARRAY ? ']' : '}');
        break;
    }
}
