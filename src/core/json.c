/* The strict JSON parser behind the safetensors reader (json_impl.h says what "strict" means).
 *
 * Recursive descent over a byte range with an explicit depth bound. Containers are collected in
 * temporary growable vectors and copied into the document's arena once complete, so the tree
 * is a few large blocks rather than one malloc per node, and one call frees it. Every read of
 * the text is checked against its end: the text need not be NUL-terminated. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_impl.h"

/* ---------------------------------------------------------------- arena */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
} arena_block;

struct fg_json_doc {
    arena_block *blocks;
    size_t min_block; /* block size: about twice the text, within [1 KiB, 64 KiB] */
    fg_json root;
};

static void *arena_alloc(fg_json_doc *doc, size_t n) {
    const size_t align = sizeof(max_align_t);
    if (n == 0) n = 1;
    if (n > SIZE_MAX - align) return NULL;
    n = (n + align - 1) / align * align;
    arena_block *b = doc->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > doc->min_block ? n : doc->min_block;
        if (cap > SIZE_MAX - sizeof(arena_block)) return NULL;
        arena_block *nb = malloc(sizeof(arena_block) + cap);
        if (!nb) return NULL;
        nb->next = doc->blocks;
        nb->used = 0;
        nb->cap = cap;
        doc->blocks = nb;
        b = nb;
    }
    void *p = (unsigned char *)b->data + b->used;
    b->used += n;
    return p;
}

/* ---------------------------------------------------------------- parser state */

typedef struct parser {
    const unsigned char *s; /* text */
    size_t len, pos;
    int max_depth;
    const char *what;
    fg_json_doc *doc;
    fg_status err; /* FG_OK until the first failure; the message is set at that point */
} parser;

static fg_status perr(parser *p, size_t at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static fg_status perr(parser *p, size_t at, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->err = fg_fail(FG_ERR_FORMAT, "%s: invalid JSON at byte %zu: %s", p->what, at, msg);
    return p->err;
}

static fg_status oom(parser *p) {
    p->err = fg_fail(FG_ERR_OOM, "%s: out of memory while parsing JSON (%zu bytes of text)", p->what, p->len);
    return p->err;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* A printable description of the byte at pos for messages ("end of text", "'x'", "byte 0x8f"). */
static const char *describe(const parser *p, size_t pos, char *buf, size_t cap) {
    if (pos >= p->len) {
        snprintf(buf, cap, "end of text");
    } else {
        unsigned char c = p->s[pos];
        if (c >= 0x20 && c < 0x7f)
            snprintf(buf, cap, "'%c'", (char)c);
        else
            snprintf(buf, cap, "byte 0x%02x", (unsigned)c);
    }
    return buf;
}

/* ---------------------------------------------------------------- strings */

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at pos (after "\u"); -1 when malformed. */
static long read_hex4(const parser *p, size_t pos) {
    if (pos > p->len || p->len - pos < 4) return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p->s[pos + (size_t)k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence starting at s[0] (a byte >= 0x80, avail bytes readable),
 * or 0 when invalid: no overlong forms, no UTF-16 surrogates (U+D800..DFFF), nothing above
 * U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return n;
}

int fg_json_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] == 0) return 0;
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(u + i, n - i);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

static size_t put_utf8(char *o, unsigned long cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string whose opening quote is at p->pos; stores the decoded text in the arena. */
static fg_status parse_string(parser *p, const char **out, size_t *out_len) {
    size_t start = p->pos;
    p->pos++; /* opening quote */
    /* First pass: find the closing quote so the output can be sized (decoding never grows). */
    size_t q = p->pos;
    while (q < p->len && p->s[q] != '"') q += (p->s[q] == '\\') ? 2 : 1;
    if (q >= p->len) return perr(p, start, "string starting here is not terminated");
    char *o = arena_alloc(p->doc, q - p->pos + 1);
    if (!o) return oom(p);
    size_t n = 0;
    while (p->pos < q) {
        size_t at = p->pos;
        unsigned char c = p->s[at];
        if (c < 0x20) return perr(p, at, "raw control character 0x%02x in string (must be escaped)", (unsigned)c);
        if (c >= 0x80) {
            size_t k = utf8_seq(p->s + at, p->len - at);
            if (k == 0 || at + k > q) return perr(p, at, "invalid UTF-8 sequence in string");
            memcpy(o + n, p->s + at, k);
            n += k;
            p->pos += k;
            continue;
        }
        if (c != '\\') {
            o[n++] = (char)c;
            p->pos++;
            continue;
        }
        /* escape; q is past it since the scan above skipped escaped bytes */
        unsigned char e = p->s[at + 1];
        p->pos += 2;
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            long cp = read_hex4(p, p->pos);
            if (cp < 0 || p->pos + 4 > q) return perr(p, at, "\\u must be followed by 4 hex digits");
            p->pos += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return perr(p, at, "unpaired low surrogate \\u%04lX", cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long lo = -1;
                if (p->pos + 6 <= q && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') lo = read_hex4(p, p->pos + 2);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return perr(p, at, "high surrogate \\u%04lX not followed by a low surrogate", cp);
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) return perr(p, at, "\\u0000 (NUL) is not allowed in strings");
            n += put_utf8(o + n, (unsigned long)cp);
            break;
        }
        default: return perr(p, at, "unknown escape '\\%c'", (e >= 0x20 && e < 0x7f) ? (char)e : '?');
        }
    }
    o[n] = 0;
    p->pos = q + 1;
    *out = o;
    *out_len = n;
    return FG_OK;
}

/* ---------------------------------------------------------------- numbers */

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static fg_status parse_number(parser *p, fg_json *v) {
    size_t start = p->pos, i = p->pos;
    int neg = 0, integral = 1;
    if (i < p->len && p->s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= p->len || !is_digit(p->s[i])) return perr(p, start, "expected a digit in number");
    if (p->s[i] == '0') {
        i++;
        if (i < p->len && is_digit(p->s[i])) return perr(p, start, "number has a leading zero");
    } else {
        while (i < p->len && is_digit(p->s[i])) i++;
    }
    if (i < p->len && p->s[i] == '.') {
        integral = 0;
        i++;
        if (i >= p->len || !is_digit(p->s[i])) return perr(p, i, "expected a digit after the decimal point");
        while (i < p->len && is_digit(p->s[i])) i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->len || !is_digit(p->s[i])) return perr(p, i, "expected a digit in the exponent");
        while (i < p->len && is_digit(p->s[i])) i++;
    }
    v->kind = FG_JSON_NUMBER;
    v->is_int = 0;
    if (integral) {
        /* exact integer with overflow detection; magnitude limit 2^63 for negatives */
        uint64_t m = 0, lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
        int fits = 1;
        for (size_t k = start + (size_t)neg; k < i; k++) {
            unsigned d = (unsigned)(p->s[k] - '0');
            if (m > (lim - d) / 10) {
                fits = 0;
                break;
            }
            m = m * 10 + d;
        }
        if (fits) {
            v->is_int = 1;
            v->i = neg ? (m == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)m) : (int64_t)m;
            v->d = (double)v->i;
        }
    }
    if (!v->is_int) {
        /* strtod needs a NUL-terminated copy; the library never calls setlocale, so '.' is the
         * decimal point */
        size_t n = i - start;
        char small[64];
        char *tmp = n < sizeof small ? small : malloc(n + 1);
        if (!tmp) return oom(p);
        memcpy(tmp, p->s + start, n);
        tmp[n] = 0;
        v->d = strtod(tmp, NULL);
        if (tmp != small) free(tmp);
    }
    p->pos = i;
    return FG_OK;
}

/* ---------------------------------------------------------------- values */

static fg_status parse_value(parser *p, fg_json *v, int depth);

/* Growable temporary vectors for the members of one container. */
typedef struct vec {
    fg_json *vals;
    const char **keys;
    size_t n, cap;
} vec;

static int vec_push(vec *t, int with_keys) {
    if (t->n < t->cap) return 1;
    size_t cap = t->cap ? t->cap * 2 : 8;
    fg_json *nv = realloc(t->vals, cap * sizeof *nv);
    if (!nv) return 0;
    t->vals = nv;
    if (with_keys) {
        const char **nk = realloc(t->keys, cap * sizeof *nk);
        if (!nk) return 0;
        t->keys = nk;
    }
    t->cap = cap;
    return 1;
}

static void vec_free(vec *t) {
    free(t->vals);
    free(t->keys);
}

/* Moves the collected members into the arena. */
static fg_status vec_finish(parser *p, vec *t, fg_json *v, int with_keys) {
    v->len = t->n;
    if (t->n == 0) return FG_OK;
    v->items = arena_alloc(p->doc, t->n * sizeof *v->items);
    if (!v->items) return oom(p);
    memcpy(v->items, t->vals, t->n * sizeof *v->items);
    if (with_keys) {
        v->keys = arena_alloc(p->doc, t->n * sizeof *v->keys);
        if (!v->keys) return oom(p);
        memcpy(v->keys, t->keys, t->n * sizeof *v->keys);
    }
    return FG_OK;
}

static fg_status parse_container(parser *p, fg_json *v, int depth, int is_object) {
    char d[32];
    size_t open = p->pos;
    if (depth >= p->max_depth) return perr(p, open, "nesting deeper than %d levels", p->max_depth);
    v->kind = is_object ? FG_JSON_OBJECT : FG_JSON_ARRAY;
    const unsigned char close = is_object ? '}' : ']';
    p->pos++;
    vec t = {0};
    fg_status s = FG_OK;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return FG_OK;
    }
    for (;;) {
        if (!vec_push(&t, is_object)) {
            s = oom(p);
            break;
        }
        skip_ws(p);
        if (is_object) {
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                s = perr(p, p->pos, "expected a string key, found %s", describe(p, p->pos, d, sizeof d));
                break;
            }
            size_t klen;
            if ((s = parse_string(p, &t.keys[t.n], &klen)) != FG_OK) break;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                s = perr(p, p->pos, "expected ':' after object key, found %s", describe(p, p->pos, d, sizeof d));
                break;
            }
            p->pos++;
        }
        if ((s = parse_value(p, &t.vals[t.n], depth + 1)) != FG_OK) break;
        t.n++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            break;
        }
        s = perr(p, p->pos, "expected ',' or '%c' in %s opened at byte %zu, found %s", close,
                 is_object ? "object" : "array", open, describe(p, p->pos, d, sizeof d));
        break;
    }
    if (s == FG_OK) s = vec_finish(p, &t, v, is_object);
    vec_free(&t);
    return s;
}

static fg_status parse_literal(parser *p, const char *word, fg_json *v, fg_json_kind kind, int b) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return perr(p, p->pos, "expected a value (did you mean '%s'?)", word);
    p->pos += n;
    v->kind = kind;
    v->boolean = b;
    return FG_OK;
}

static fg_status parse_value(parser *p, fg_json *v, int depth) {
    char d[32];
    memset(v, 0, sizeof *v);
    skip_ws(p);
    v->offset = p->pos;
    if (p->pos >= p->len) return perr(p, p->pos, "expected a value, found end of text");
    unsigned char c = p->s[p->pos];
    switch (c) {
    case '{': return parse_container(p, v, depth, 1);
    case '[': return parse_container(p, v, depth, 0);
    case '"':
        v->kind = FG_JSON_STRING;
        return parse_string(p, &v->str, &v->len);
    case 't': return parse_literal(p, "true", v, FG_JSON_BOOL, 1);
    case 'f': return parse_literal(p, "false", v, FG_JSON_BOOL, 0);
    case 'n': return parse_literal(p, "null", v, FG_JSON_NULL, 0);
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, v);
        return perr(p, p->pos, "expected a value, found %s", describe(p, p->pos, d, sizeof d));
    }
}

/* ---------------------------------------------------------------- public (private API) */

fg_status fg_json_parse(const char *text, size_t len, int max_depth, const char *what, fg_json_doc **out) {
    FG_ASSERT(out && (text || len == 0) && max_depth > 0);
    *out = NULL;
    fg_json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) return fg_fail(FG_ERR_OOM, "%s: out of memory", what ? what : "json");
    const size_t lo = 1024, hi = 64 * 1024;
    doc->min_block = len < lo / 2 ? lo : len > hi / 2 ? hi : 2 * len;
    parser p = {(const unsigned char *)text, len, 0, max_depth, what ? what : "json", doc, FG_OK};
    fg_status s = parse_value(&p, &doc->root, 0);
    if (s == FG_OK) {
        char d[32];
        skip_ws(&p);
        if (p.pos != p.len) s = perr(&p, p.pos, "unexpected %s after the value", describe(&p, p.pos, d, sizeof d));
    }
    if (s != FG_OK) {
        fg_json_free(doc);
        return s;
    }
    *out = doc;
    return FG_OK;
}

const fg_json *fg_json_root(const fg_json_doc *doc) { return &doc->root; }

void fg_json_free(fg_json_doc *doc) {
    if (!doc) return;
    arena_block *b = doc->blocks;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(doc);
}

const char *fg_json_kind_name(fg_json_kind k) {
    static const char *names[FG_JSON_KIND_COUNT] = {"null", "boolean", "number", "string", "array", "object"};
    return (k >= 0 && k < FG_JSON_KIND_COUNT) ? names[k] : "?";
}
