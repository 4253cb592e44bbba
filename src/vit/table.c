/* Profile tables read back (issue 14): `frugal vit profile --json` writes every measured skip
 * configuration and the Pareto front as JSON; `frugal vit run` and the demo read that file back
 * into fg_vit_profile_entry arrays for the governor. The file is untrusted input (it may be
 * edited by hand or truncated), so the reader is strict: the project's strict JSON parser
 * (core/json_impl.h), every required field checked for kind and range, every skip configuration
 * parsed knob by knob, and every error names the file and the field (fuzz/fuzz_vit_table.c).
 *
 * The skip configuration's text form ("attn1,mlp2,heads0=2,tome1=4,decoder3", "all-on" for none) is
 * defined here once, both ways. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"
#include "core/json_impl.h"
#include "frugal/vit.h"

#define TABLE_MAX_DEPTH 16
#define TABLE_MAX_ENTRIES 1000000 /* far beyond any greedy search; bounds the allocation */

/* ---------------------------------------------------------------- the skip configuration as text */

/* The per-block flag knobs, in the order they are written within a block. */
typedef struct flag_knob {
    const char *name;
    size_t off; /* offset of the uint8_t[FG_VIT_MAX_BLOCKS] array in fg_vit_skip */
} flag_knob;

static const flag_knob flag_knobs[] = {
    {"attn", offsetof(fg_vit_skip, attn)},
    {"mlp", offsetof(fg_vit_skip, mlp)},
    {"dwconv", offsetof(fg_vit_skip, dwconv)},
    {"srpool", offsetof(fg_vit_skip, sr_pool)},
};
#define N_FLAG_KNOBS (sizeof flag_knobs / sizeof flag_knobs[0])

static uint8_t *flag_array(fg_vit_skip *k, size_t j) { return (uint8_t *)k + flag_knobs[j].off; }
static const uint8_t *flag_array_c(const fg_vit_skip *k, size_t j) { return (const uint8_t *)k + flag_knobs[j].off; }

/* Appends one knob ("," first unless it is the first) to buf as snprintf would, counting what is
 * needed in *n even past cap. */
static void put(char *buf, size_t cap, size_t *n, const char *knob) {
    char tmp[48];
    const int w = snprintf(tmp, sizeof tmp, "%s%s", *n ? "," : "", knob);
    FG_ASSERT(w > 0 && (size_t)w < sizeof tmp);
    if (*n < cap) snprintf(buf + *n, cap - *n, "%s", tmp);
    *n += (size_t)w;
}

size_t fg_vit_skip_format(const fg_vit_skip *k, char *buf, size_t cap) {
    FG_ASSERT(k && (buf || cap == 0));
    size_t n = 0;
    char knob[40];
    if (cap) buf[0] = 0;
    for (int b = 0; b < FG_VIT_MAX_BLOCKS; b++) {
        for (size_t j = 0; j < N_FLAG_KNOBS; j++)
            if (flag_array_c(k, j)[b]) {
                snprintf(knob, sizeof knob, "%s%d", flag_knobs[j].name, b);
                put(buf, cap, &n, knob);
            }
        if (k->heads[b]) {
            snprintf(knob, sizeof knob, "heads%d=%d", b, k->heads[b]);
            put(buf, cap, &n, knob);
        }
        if (k->tome[b]) {
            snprintf(knob, sizeof knob, "tome%d=%d", b, k->tome[b]);
            put(buf, cap, &n, knob);
        }
    }
    for (int s = 0; s < FG_SEGFORMER_STAGES; s++)
        if (k->decoder[s]) {
            snprintf(knob, sizeof knob, "decoder%d", s);
            put(buf, cap, &n, knob);
        }
    if (n == 0) {
        if (cap) snprintf(buf, cap, "all-on");
        n = 6;
    }
    return n;
}

/* A decimal integer in [0, max] at *p (digits only, no sign, no leading zeros unless "0"); advances
 * *p. 0 when there is none or it is out of range. */
static int parse_uint(const char **p, long max, long *out) {
    const char *s = *p;
    if (*s < '0' || *s > '9') return 0;
    if (*s == '0' && s[1] >= '0' && s[1] <= '9') return 0;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > max) return 0;
        s++;
    }
    *p = s;
    *out = v;
    return 1;
}

fg_status fg_vit_skip_parse(const char *text, fg_vit_skip *out) {
    FG_ASSERT(text && out);
    memset(out, 0, sizeof *out);
    if (strcmp(text, "all-on") == 0) return FG_OK;
    const char *p = text;
    for (;;) {
        const char *item = p, *end = strchr(p, ',');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        char knob[48];
        snprintf(knob, sizeof knob, "%.*s%s", (int)(len < 40 ? len : 40), item, len > 40 ? "..." : "");
        if (len == 0) {
            memset(out, 0, sizeof *out);
            return fg_fail(FG_ERR_FORMAT, "skip '%.200s': empty knob (expected knobs separated by single commas, or all-on)",
                           text);
        }
        /* the name: letters */
        size_t nl = 0;
        while (nl < len && item[nl] >= 'a' && item[nl] <= 'z') nl++;
        const char *q = item + nl;
        long idx = -1, val = 0;
        int ok = 0;
        uint8_t *slot = NULL;
        int dup = 0;
        for (size_t j = 0; j < N_FLAG_KNOBS && !slot; j++)
            if (nl == strlen(flag_knobs[j].name) && strncmp(item, flag_knobs[j].name, nl) == 0) {
                ok = parse_uint(&q, FG_VIT_MAX_BLOCKS - 1, &idx) && q == item + len;
                if (ok) {
                    slot = flag_array(out, j) + idx;
                    dup = *slot != 0;
                    *slot = 1;
                }
                break;
            }
        const int is_heads = nl == 5 && strncmp(item, "heads", 5) == 0, is_tome = nl == 4 && strncmp(item, "tome", 4) == 0;
        if (!slot && (is_heads || is_tome)) {
            ok = parse_uint(&q, FG_VIT_MAX_BLOCKS - 1, &idx) && *q == '=';
            if (ok) {
                q++;
                ok = parse_uint(&q, 255, &val) && val >= 1 && q == item + len;
            }
            if (ok) {
                slot = is_heads ? &out->heads[idx] : &out->tome[idx];
                dup = *slot != 0;
                *slot = (uint8_t)val;
            }
        } else if (!slot && nl == 7 && strncmp(item, "decoder", 7) == 0) {
            ok = parse_uint(&q, FG_SEGFORMER_STAGES - 1, &idx) && q == item + len;
            if (ok) {
                slot = &out->decoder[idx];
                dup = *slot != 0;
                *slot = 1;
            }
        }
        if (!slot) {
            memset(out, 0, sizeof *out);
            return fg_fail(FG_ERR_FORMAT,
                           "skip '%.200s': bad knob '%s' (expected attn<b>, mlp<b>, dwconv<b>, srpool<b>, heads<b>=<k> or "
                           "tome<b>=<r> with block b < %d and 1 <= k, r <= 255, decoder<s> with s < %d, or all-on)",
                           text, knob, FG_VIT_MAX_BLOCKS, FG_SEGFORMER_STAGES);
        }
        if (dup) {
            memset(out, 0, sizeof *out);
            return fg_fail(FG_ERR_FORMAT, "skip '%.200s': knob '%s' given twice", text, knob);
        }
        if (!end) return FG_OK;
        p = end + 1;
    }
}

/* ---------------------------------------------------------------- the table */

void fg_vit_table_free(fg_vit_table *t) {
    if (!t) return;
    free(t->all);
    free(t->all_pareto);
    free(t->front);
    memset(t, 0, sizeof *t);
}

/* The member `key` of object o; NULL when absent. FG_ERR_FORMAT when it appears twice. */
static fg_status member(const fg_json *o, const char *key, const char *what, const char *where, const fg_json **out) {
    *out = NULL;
    for (size_t i = 0; i < o->len; i++)
        if (strcmp(o->keys[i], key) == 0) {
            if (*out) return fg_fail(FG_ERR_FORMAT, "%s: %s%s\"%s\" appears twice", what, where, *where ? ": " : "", key);
            *out = &o->items[i];
        }
    return FG_OK;
}

static fg_status need_string(const fg_json *o, const char *key, const char *what, char *dst, size_t cap) {
    const fg_json *v;
    FG_TRY(member(o, key, what, "", &v));
    if (!v) return fg_fail(FG_ERR_FORMAT, "%s: no \"%s\" (expected a string; not a frugal vit profile?)", what, key);
    if (v->kind != FG_JSON_STRING || v->len == 0 || v->len >= cap)
        return fg_fail(FG_ERR_FORMAT, "%s: %s: expected a string of 1 to %zu bytes, got %s", what, key, cap - 1,
                       v->kind == FG_JSON_STRING ? "a longer or empty string" : fg_json_kind_name(v->kind));
    memcpy(dst, v->str, v->len + 1);
    return FG_OK;
}

/* A finite number >= lo (lo = -INFINITY: any finite number). */
static fg_status need_number(const fg_json *o, const char *key, double lo, const char *what, const char *where,
                             double *dst) {
    const fg_json *v;
    FG_TRY(member(o, key, what, where, &v));
    if (!v) return fg_fail(FG_ERR_FORMAT, "%s: %s: no \"%s\"", what, where, key);
    if (v->kind != FG_JSON_NUMBER || !isfinite(v->d) || v->d < lo) {
        char got[64];
        if (v->kind == FG_JSON_NUMBER) snprintf(got, sizeof got, "%g", v->d);
        else snprintf(got, sizeof got, "%s %s", v->kind == FG_JSON_ARRAY || v->kind == FG_JSON_OBJECT ? "an" : "a",
                      fg_json_kind_name(v->kind));
        return fg_fail(FG_ERR_FORMAT, "%s: %s.%s: expected a finite number%s, got %s", what, where, key,
                       lo == 0.0 ? " >= 0" : "", got);
    }
    *dst = v->d;
    return FG_OK;
}

/* The array `key` of the root into a fresh entry array; flags (if not NULL) from each "pareto". */
static fg_status read_entries(const fg_json *root, const char *key, const char *what, fg_vit_profile_entry **out,
                              size_t *n_out, uint8_t **flags) {
    const fg_json *a;
    FG_TRY(member(root, key, what, "", &a));
    if (!a) return fg_fail(FG_ERR_FORMAT, "%s: no \"%s\" (expected an array of configurations)", what, key);
    if (a->kind != FG_JSON_ARRAY) return fg_fail(FG_ERR_FORMAT, "%s: %s: expected an array, got %s", what, key, fg_json_kind_name(a->kind));
    if (a->len == 0) return fg_fail(FG_ERR_FORMAT, "%s: %s: empty (expected at least one configuration)", what, key);
    if (a->len > TABLE_MAX_ENTRIES)
        return fg_fail(FG_ERR_FORMAT, "%s: %s: %zu entries, more than the limit of %d", what, key, a->len, TABLE_MAX_ENTRIES);
    fg_vit_profile_entry *e = calloc(a->len, sizeof *e);
    uint8_t *fl = flags ? calloc(a->len, 1) : NULL;
    if (!e || (flags && !fl)) {
        free(e);
        free(fl);
        return fg_fail(FG_ERR_OOM, "%s: out of memory for %zu configurations", what, a->len);
    }
    fg_status s = FG_OK;
    for (size_t i = 0; i < a->len && s == FG_OK; i++) {
        char where[64];
        snprintf(where, sizeof where, "%s[%zu]", key, i);
        const fg_json *o = &a->items[i];
        if (o->kind != FG_JSON_OBJECT) {
            s = fg_fail(FG_ERR_FORMAT, "%s: %s: expected an object, got %s", what, where, fg_json_kind_name(o->kind));
            break;
        }
        const fg_json *sk;
        s = member(o, "skip", what, where, &sk);
        if (s != FG_OK) break;
        if (!sk || sk->kind != FG_JSON_STRING) {
            s = fg_fail(FG_ERR_FORMAT, "%s: %s.skip: expected a string such as \"attn1,mlp2\" or \"all-on\", got %s", what,
                        where, sk ? fg_json_kind_name(sk->kind) : "nothing");
            break;
        }
        if (fg_vit_skip_parse(sk->str, &e[i].skip) != FG_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", fg_last_error());
            s = fg_fail(FG_ERR_FORMAT, "%s: %s.%s", what, where, msg);
            break;
        }
        s = need_number(o, "flops", 0.0, what, where, &e[i].flops);
        if (s == FG_OK) s = need_number(o, "seconds", 0.0, what, where, &e[i].seconds);
        if (s == FG_OK) s = need_number(o, "metric", -INFINITY, what, where, &e[i].metric);
        if (s == FG_OK && fl) {
            const fg_json *pf;
            s = member(o, "pareto", what, where, &pf);
            if (s == FG_OK && pf) {
                if (pf->kind != FG_JSON_NUMBER || !pf->is_int || (pf->i != 0 && pf->i != 1))
                    s = fg_fail(FG_ERR_FORMAT, "%s: %s.pareto: expected 0 or 1", what, where);
                else
                    fl[i] = (uint8_t)pf->i;
            }
        }
    }
    if (s != FG_OK) {
        free(e);
        free(fl);
        return s;
    }
    *out = e;
    *n_out = a->len;
    if (flags) *flags = fl;
    return FG_OK;
}

fg_status fg_vit_table_parse(const void *text, size_t len, const char *what, fg_vit_table *out) {
    FG_ASSERT((text || len == 0) && out);
    if (!what) what = "profile table";
    memset(out, 0, sizeof *out);
    fg_json_doc *doc = NULL;
    FG_TRY(fg_json_parse(text ? (const char *)text : "", len, TABLE_MAX_DEPTH, what, &doc));
    const fg_json *root = fg_json_root(doc);
    fg_status s = FG_OK;
    if (root->kind != FG_JSON_OBJECT)
        s = fg_fail(FG_ERR_FORMAT, "%s: the root is %s, expected an object (a frugal vit profile --json file)", what,
                    fg_json_kind_name(root->kind));
    if (s == FG_OK) s = need_string(root, "model", what, out->model, sizeof out->model);
    if (s == FG_OK) s = need_string(root, "data", what, out->data, sizeof out->data);
    if (s == FG_OK) s = need_string(root, "metric", what, out->metric, sizeof out->metric);
    if (s == FG_OK) s = read_entries(root, "configurations", what, &out->all, &out->n_all, &out->all_pareto);
    if (s == FG_OK) s = read_entries(root, "pareto", what, &out->front, &out->n_front, NULL);
    fg_json_free(doc);
    if (s != FG_OK) fg_vit_table_free(out);
    return s;
}

fg_status fg_vit_table_load(const char *path, fg_vit_table *out) {
    FG_ASSERT(path && out);
    memset(out, 0, sizeof *out);
    unsigned char *buf = NULL;
    size_t len = 0;
    FG_TRY(fg_file_read_all(path, &buf, &len));
    fg_status s = fg_vit_table_parse(buf, len, path, out);
    free(buf);
    return s;
}
