/* A small strict JSON parser (RFC 8259) for file headers, private to the library.
 *
 * It parses a whole text into a tree held in one arena, so freeing is one call. It is strict on
 * purpose, because it reads untrusted files: exactly one value surrounded by optional whitespace,
 * no comments, no trailing commas, no leading zeros, no NaN/Infinity, strings must be valid UTF-8
 * (no overlong forms, no surrogate code points, no raw control characters), "\u" escapes must pair
 * surrogates correctly, and "\u0000" is refused so every string is a plain C string. Nesting is
 * bounded by max_depth, so recursion depth is bounded whatever the input. Objects keep their
 * members in file order and may repeat keys: callers that need unique keys check that themselves
 * (they know the better message). */
#ifndef FG_JSON_IMPL_H
#define FG_JSON_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "frugal/core.h"

typedef enum fg_json_kind {
    FG_JSON_NULL,
    FG_JSON_BOOL,
    FG_JSON_NUMBER,
    FG_JSON_STRING,
    FG_JSON_ARRAY,
    FG_JSON_OBJECT,
    FG_JSON_KIND_COUNT
} fg_json_kind;

typedef struct fg_json fg_json;
struct fg_json {
    fg_json_kind kind;
    int boolean;       /* FG_JSON_BOOL: 0 or 1 */
    int is_int;        /* FG_JSON_NUMBER: written without fraction or exponent and fits in int64 */
    int64_t i;         /* the integer when is_int */
    double d;          /* the number as a double (approximate for huge integers) */
    const char *str;   /* FG_JSON_STRING: decoded UTF-8, NUL-terminated, no embedded NUL */
    size_t len;        /* string length in bytes; item count of arrays; member count of objects */
    fg_json *items;    /* array items, or object member values (len of them) */
    const char **keys; /* object member keys (len of them), decoded like strings */
    size_t offset;     /* byte offset of the value in the text, for messages */
};

typedef struct fg_json_doc fg_json_doc;

/* Parses text[0..len) (need not be NUL-terminated). On failure returns FG_ERR_FORMAT with the
 * message "<what>: invalid JSON at byte <k>: <what was expected>" and *out = NULL; allocation
 * failure is FG_ERR_OOM. */
fg_status fg_json_parse(const char *text, size_t len, int max_depth, const char *what, fg_json_doc **out);
const fg_json *fg_json_root(const fg_json_doc *doc);
void fg_json_free(fg_json_doc *doc);
const char *fg_json_kind_name(fg_json_kind k);
/* 1 when s[0..n) is valid UTF-8 by the same rules the parser applies to strings (and has no NUL). */
int fg_json_utf8_valid(const char *s, size_t n);

#endif
