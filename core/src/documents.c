/*
 * Reading error and workflow documents as text (documents.h). The YAML reader covers
 * what Psych emits and what people write by hand in these columns: block mappings and
 * sequences (Psych puts a mapping's sequence at the key's own indentation), plain
 * scalars over several lines, single- and double-quoted scalars with their escapes and
 * line folding, literal and folded block scalars with chomping and indentation
 * indicators, flow collections (so JSON too), tags, anchors and comments. Aliases are
 * read as the text "*name". It keeps no pointer into the input and recurses at most
 * MAX_DEPTH levels, and every loop consumes input, so any input ends in linear time.
 */
#include "documents.h"
#include "error.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_STEPS 1000

/* --- the tree -------------------------------------------------------------------- */

enum { N_SCALAR, N_MAP, N_SEQ };

typedef struct node {
    int kind;
    int plain;        /* a scalar written without quotes */
    char *tag;        /* "!ruby/exception:Foo", or NULL */
    char *text;       /* scalar: decoded (may hold NUL and invalid UTF-8: cleaned on output) */
    size_t len;
    struct node **items; /* N_MAP: key, value, key, value ...; N_SEQ: the items */
    size_t n, cap;
} node;

static void node_free(node *nd)
{
    if (!nd)
        return;
    for (size_t i = 0; i < nd->n; i++)
        node_free(nd->items[i]);
    free(nd->items);
    free(nd->tag);
    free(nd->text);
    free(nd);
}

typedef struct reader {
    const char *s;
    size_t n;
    size_t pos;
    int depth;
    int stop; /* unreadable from here on: keep what was read */
    int oom;
    int json; /* a JSON document: line breaks inside strings are taken as written */
} reader;

static node *new_node(reader *r, int kind)
{
    node *nd = calloc(1, sizeof *nd);
    if (!nd)
        r->oom = r->stop = 1;
    else
        nd->kind = kind;
    return nd;
}

/* Append `child` (taking it; NULL is an empty scalar). */
static void add_item(reader *r, node *parent, node *child)
{
    if (!child && !(child = new_node(r, N_SCALAR)))
        return;
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        node **grown = realloc(parent->items, cap * sizeof *grown);
        if (!grown) {
            node_free(child);
            r->oom = r->stop = 1;
            return;
        }
        parent->items = grown;
        parent->cap = cap;
    }
    parent->items[parent->n++] = child;
}

static node *scalar_from(reader *r, aj_buf *b, int plain)
{
    node *nd = new_node(r, N_SCALAR);
    if (!nd) {
        free(b->s);
        *b = (aj_buf){0};
        return NULL;
    }
    if (b->oom)
        r->oom = r->stop = 1;
    nd->plain = plain;
    nd->text = b->oom ? NULL : b->s;
    nd->len = b->oom || !b->s ? 0 : b->len;
    if (b->oom)
        free(b->s);
    *b = (aj_buf){0};
    return nd;
}

/* --- characters and lines ------------------------------------------------------------ */

static int at_end(const reader *r) { return r->pos >= r->n; }
static char cur(const reader *r) { return r->pos < r->n ? r->s[r->pos] : '\0'; }
static char peek(const reader *r, size_t k) { return r->pos + k < r->n ? r->s[r->pos + k] : '\0'; }
/* The length of the line break at s[i], or 0. YAML 1.1 (libyaml, so Psych) reads
 * LF, CR, CR LF, NEL (U+0085), LS (U+2028) and PS (U+2029) as line breaks. */
static size_t break_len(const char *s, size_t n, size_t i)
{
    if (i >= n)
        return 0;
    unsigned char c = (unsigned char)s[i];
    if (c == '\n')
        return 1;
    if (c == '\r')
        return i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
    if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85)
        return 2;
    if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
        ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9))
        return 3;
    return 0;
}
static int brk(const reader *r, size_t i) { return break_len(r->s, r->n, i) > 0; }
static int at_break(const reader *r) { return brk(r, r->pos); }
static int is_blank(char c) { return c == ' ' || c == '\t'; }
static int is_space_or_end(const reader *r, size_t k)
{
    char c = peek(r, k);
    return r->pos + k >= r->n || is_blank(c) || brk(r, r->pos + k);
}

/* Does a line break end just before s[i]? */
static int ends_break(const reader *r, size_t i)
{
    const unsigned char *u = (const unsigned char *)r->s;
    return u[i - 1] == '\n' || u[i - 1] == '\r' || (i >= 2 && u[i - 2] == 0xC2 && u[i - 1] == 0x85) ||
           (i >= 3 && u[i - 3] == 0xE2 && u[i - 2] == 0x80 && (u[i - 1] == 0xA8 || u[i - 1] == 0xA9));
}

/* The column of r->pos (bytes since the line's start). */
static int column(const reader *r)
{
    size_t i = r->pos;
    while (i > 0 && !ends_break(r, i))
        i--;
    size_t c = r->pos - i;
    return c > 100000 ? 100000 : (int)c;
}

static void skip_blanks(reader *r)
{
    while (!at_end(r) && is_blank(cur(r)))
        r->pos++;
}

/* Past the line break at r->pos (none: nothing happens). */
static void skip_break(reader *r) { r->pos += break_len(r->s, r->n, r->pos); }

static void skip_to_eol(reader *r)
{
    while (!at_end(r) && !at_break(r))
        r->pos++;
}

/* At a comment or the end of the line (after blanks)? */
static int at_eol_or_comment(reader *r)
{
    skip_blanks(r);
    return at_end(r) || at_break(r) || cur(r) == '#';
}

/* A document marker ("---" or "...") at column 0? */
static int at_doc_marker(const reader *r)
{
    if (column(r) != 0)
        return 0;
    return ((peek(r, 0) == '-' && peek(r, 1) == '-' && peek(r, 2) == '-') ||
            (peek(r, 0) == '.' && peek(r, 1) == '.' && peek(r, 2) == '.')) &&
           is_space_or_end(r, 3);
}

/* Move to the first character of the next line that holds content (not blank, not a
 * comment) and return its indentation, or -1 at the end or at a document marker. The
 * current position must be at a line's start or at the end of the current line's
 * content. */
static int next_content_line(reader *r)
{
    for (;;) {
        skip_to_eol(r);
        if (at_end(r))
            return -1;
        skip_break(r);
        size_t line = r->pos;
        while (!at_end(r) && cur(r) == ' ')
            r->pos++;
        if (at_end(r))
            return -1;
        char c = cur(r);
        if (at_break(r) || c == '#' || c == '\t') {
            if (c == '\t')
                skip_blanks(r);
            if (at_end(r) || at_break(r) || cur(r) == '#')
                continue;
        }
        if (r->pos == line && at_doc_marker(r))
            return -1;
        size_t indent = r->pos - line;
        return indent > 100000 ? 100000 : (int)indent;
    }
}

/* Like next_content_line, but leave the position where it was. */
static int peek_content_line(reader *r, size_t *content)
{
    size_t saved = r->pos;
    int indent = next_content_line(r);
    *content = r->pos;
    r->pos = saved;
    return indent;
}

/* Is the text at r->pos a block sequence entry ("-" then a space or the line's end)? */
static int at_seq_entry(const reader *r) { return cur(r) == '-' && is_space_or_end(r, 1); }

/* --- UTF-8 ------------------------------------------------------------------------- */

static void put_cp(aj_buf *b, uint32_t cp)
{
    char u[4];
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        u[0] = (char)cp;
        aj_buf_put(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        aj_buf_put(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        aj_buf_put(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        aj_buf_put(b, u, 4);
    }
}

/* The code point of the valid UTF-8 sequence at p (length in *n), or -1 (*n = 1). */
static long utf8_at(const unsigned char *p, size_t left, size_t *n)
{
    unsigned char c = p[0];
    uint32_t cp;
    size_t len;
    *n = 1;
    if (c < 0x80)
        return c;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return -1;
    if (len > left)
        return -1;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *n = len;
    return (long)cp;
}

/* The text built in b, copied into the arena (b is released). */
static char *arena_take(aj_arena *a, aj_buf *b)
{
    char *out = NULL;
    if (aj_buf_take(b, &out))
        return a->oom = 1, NULL;
    char *copy = aj_arena_strdup(a, out);
    free(out);
    return copy;
}

char *aj_doc_clean(aj_arena *a, const char *s, size_t len)
{
    aj_buf b = {0};
    aj_buf_put(&b, "", 0);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n;
        long cp = utf8_at(p + i, len - i, &n);
        if (cp == '\r') {
            aj_buf_put(&b, "\n", 1); /* CR LF and a lone CR are line breaks */
            i += i + 1 < len && p[i + 1] == '\n' ? 2 : 1;
            continue;
        }
        if (cp < 0 || (cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7F ||
            (cp >= 0x80 && cp <= 0x9F))
            put_cp(&b, 0xFFFD);
        else
            aj_buf_put(&b, s + i, n);
        i += n;
    }
    return arena_take(a, &b);
}

char *aj_doc_one_line(aj_arena *a, const char *text)
{
    aj_buf b = {0};
    aj_buf_put(&b, "", 0);
    int space = 0;
    const unsigned char *p = (const unsigned char *)text;
    size_t len = strlen(text);
    for (size_t i = 0; i < len;) {
        size_t n;
        long cp = utf8_at(p + i, len - i, &n);
        int white = cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0x85 ||
                    cp == 0xA0 || cp == 0x2028 || cp == 0x2029;
        if (white) {
            space = b.len > 0;
            i += n;
            continue;
        }
        size_t need = n + (space ? 1 : 0);
        if (b.len + need > AJ_DOC_SUMMARY_BYTES) {
            aj_buf_puts(&b, "\xE2\x80\xA6"); /* … */
            break;
        }
        if (space)
            aj_buf_put(&b, " ", 1);
        space = 0;
        aj_buf_put(&b, text + i, n);
        i += n;
    }
    return arena_take(a, &b);
}

/* --- scalars ------------------------------------------------------------------------- */

/* Drop trailing blanks of b, but not below `keep` bytes (escaped blanks stay). */
static void trim_trailing(aj_buf *b, size_t keep)
{
    while (b->len > keep && b->s && is_blank(b->s[b->len - 1]))
        b->s[--b->len] = '\0';
}

/* Append the line break at s[i] as YAML reads it: LF, CR, CR LF and NEL are a line
 * feed; LS and PS stay themselves. Returns its length. */
static size_t put_break(aj_buf *b, const reader *r, size_t i)
{
    size_t n = break_len(r->s, r->n, i);
    if (n == 3)
        aj_buf_put(b, r->s + i, 3);
    else if (n)
        aj_buf_put(b, "\n", 1);
    return n;
}

/* Fold the line breaks at r->pos inside a flow scalar (quoted, plain) as libyaml does:
 * the first break becomes a space when it is a line feed and no empty line follows,
 * else it is dropped (line feed) or kept (LS, PS), and each further break is kept.
 * Leading blanks of each following line are skipped. */
static void fold_breaks(reader *r, aj_buf *b)
{
    int lead_lf = break_len(r->s, r->n, r->pos) < 3;
    aj_buf lead = {0}, trailing = {0};
    skip_break(r);
    if (!lead_lf)
        put_break(&lead, r, r->pos - 3);
    for (;;) {
        skip_blanks(r);
        if (!at_break(r))
            break;
        r->pos += put_break(&trailing, r, r->pos);
    }
    if (lead_lf && trailing.len == 0)
        aj_buf_put(b, " ", 1);
    if (lead.len)
        aj_buf_put(b, lead.s, lead.len);
    if (trailing.len)
        aj_buf_put(b, trailing.s, trailing.len);
    if (lead.oom || trailing.oom)
        b->oom = 1;
    free(lead.s);
    free(trailing.s);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* `digits` hex digits at r->pos (advancing past them), or -1 (not advancing). */
static long read_hex(reader *r, int digits)
{
    long v = 0;
    for (int i = 0; i < digits; i++) {
        int h = hex_value(peek(r, (size_t)i));
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    r->pos += (size_t)digits;
    return v;
}

static node *single_quoted(reader *r)
{
    aj_buf b = {0};
    aj_buf_put(&b, "", 0);
    r->pos++; /* ' */
    for (;;) {
        if (at_end(r)) {
            r->stop = 1; /* unterminated (a truncated document): keep what was read */
            break;
        }
        char c = cur(r);
        if (c == '\'') {
            if (peek(r, 1) == '\'') {
                aj_buf_put(&b, "'", 1);
                r->pos += 2;
                continue;
            }
            r->pos++;
            break;
        }
        if (at_break(r) && !r->json) {
            trim_trailing(&b, 0);
            fold_breaks(r, &b);
            continue;
        }
        aj_buf_put(&b, &c, 1);
        r->pos++;
    }
    return scalar_from(r, &b, 0);
}

static node *double_quoted(reader *r)
{
    aj_buf b = {0};
    aj_buf_put(&b, "", 0);
    size_t keep = 0; /* bytes written by escapes: never trimmed */
    r->pos++; /* " */
    for (;;) {
        if (at_end(r)) {
            r->stop = 1;
            break;
        }
        char c = cur(r);
        if (c == '"') {
            r->pos++;
            break;
        }
        if (at_break(r) && !r->json) {
            trim_trailing(&b, keep);
            fold_breaks(r, &b);
            continue;
        }
        if (c != '\\') {
            aj_buf_put(&b, &c, 1);
            r->pos++;
            continue;
        }
        r->pos++; /* the backslash */
        if (at_end(r)) {
            r->stop = 1;
            break;
        }
        char e = cur(r);
        r->pos++;
        long cp = -1;
        switch (e) {
        case '0': cp = 0; break;
        case 'a': cp = 7; break;
        case 'b': cp = 8; break;
        case 't': case '\t': cp = 9; break;
        case 'n': cp = 10; break;
        case 'v': cp = 11; break;
        case 'f': cp = 12; break;
        case 'r': cp = 13; break;
        case 'e': cp = 27; break;
        case ' ': cp = ' '; break;
        case '"': cp = '"'; break;
        case '/': cp = '/'; break;
        case '\\': cp = '\\'; break;
        case 'N': cp = 0x85; break;
        case '_': cp = 0xA0; break;
        case 'L': cp = 0x2028; break;
        case 'P': cp = 0x2029; break;
        case 'x': cp = read_hex(r, 2); break;
        case 'u':
            cp = read_hex(r, 4);
            /* JSON writes characters beyond the BMP as a surrogate pair */
            if (cp >= 0xD800 && cp <= 0xDBFF && cur(r) == '\\' && peek(r, 1) == 'u') {
                size_t back = r->pos;
                r->pos += 2;
                long low = read_hex(r, 4);
                if (low >= 0xDC00 && low <= 0xDFFF)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                else
                    r->pos = back; /* a lone high surrogate: U+FFFD, then the next escape */
            }
            break;
        case 'U': cp = read_hex(r, 8); break;
        default:
            break;
        }
        if (cp < 0 && brk(r, r->pos - 1) && !r->json) {
            /* an escaped line break: the lines join without a space (empty lines
             * after it still count) */
            r->pos--;
            skip_break(r);
            for (;;) {
                skip_blanks(r);
                if (!at_break(r))
                    break;
                r->pos += put_break(&b, r, r->pos);
            }
            keep = b.len;
            continue;
        }
        if (cp < 0) {
            /* not an escape YAML knows: keep it as written */
            aj_buf_put(&b, "\\", 1);
            aj_buf_put(&b, &e, 1);
        } else {
            put_cp(&b, (uint32_t)cp);
        }
        keep = b.len;
    }
    return scalar_from(r, &b, 0);
}

/* A plain scalar in block context: to the end of the line (or a comment), continued on
 * following lines indented more than `owner`, folded as flow scalars are. */
static node *plain_block(reader *r, int owner)
{
    aj_buf b = {0};
    aj_buf_put(&b, "", 0);
    for (;;) {
        size_t start = r->pos;
        while (!at_end(r) && !at_break(r) &&
               !(cur(r) == '#' && r->pos > start && is_blank(r->s[r->pos - 1])))
            r->pos++;
        size_t end = r->pos;
        while (end > start && is_blank(r->s[end - 1]))
            end--;
        aj_buf_put(&b, r->s + start, end - start);
        if (!at_break(r))
            break; /* the end, or a comment */
        size_t content;
        int indent = peek_content_line(r, &content);
        if (indent <= owner || r->s[content] == '#')
            break;
        fold_breaks(r, &b); /* ends at the next line's first character */
        if (r->pos != content) {
            r->pos = content; /* (a tab in the indentation) */
        }
    }
    return scalar_from(r, &b, 1);
}

/* Is there a document marker ("---" or "...") at `pos`, a line's start? */
static int doc_marker_at(const reader *r, size_t pos)
{
    reader at = *r;
    at.pos = pos;
    return at_doc_marker(&at);
}

static void buf_append(aj_buf *to, aj_buf *from)
{
    if (from->len)
        aj_buf_put(to, from->s, from->len);
    if (from->oom)
        to->oom = 1;
    from->len = 0;
}

/* A literal (|) or folded (>) block scalar of a node inside a collection indented
 * `owner` (-1: the document's top), read as libyaml does. It ends at the line break
 * before the first line that is not part of it. */
static node *block_scalar(reader *r, int owner)
{
    int folded = cur(r) == '>';
    r->pos++;
    int chomp = 0; /* -1 strip, 0 clip, 1 keep */
    int explicit_indent = 0;
    for (int i = 0; i < 2; i++) {
        char c = cur(r);
        if (c == '-' || c == '+')
            chomp = c == '-' ? -1 : 1;
        else if (c >= '1' && c <= '9')
            explicit_indent = c - '0';
        else
            break;
        r->pos++;
    }
    skip_to_eol(r); /* a comment, or text a block scalar header cannot have */
    /* The content's indentation: given relative to the enclosing collection, or that of
     * the first non-empty line; more than the collection's, and at least 1. */
    long indent = explicit_indent ? (owner < 0 ? 0 : owner) + explicit_indent : -1;
    aj_buf b = {0}, lead = {0}, trail = {0}; /* the last line's break; the empty lines' */
    aj_buf_put(&b, "", 0);
    int leading_blank = 0;
    size_t last_break = r->pos;
    skip_break(r); /* the header's own line */
    while (last_break < r->pos) {
        size_t line, sp;
        for (;;) { /* empty lines */
            line = r->pos;
            sp = 0;
            while (line + sp < r->n && r->s[line + sp] == ' ')
                sp++;
            if (!brk(r, line + sp))
                break;
            last_break = r->pos = line + sp;
            r->pos += put_break(&trail, r, r->pos);
        }
        if (line + sp >= r->n) {
            r->pos = r->n;
            break;
        }
        if (indent < 0) {
            if ((long)sp <= owner || sp < 1) {
                r->pos = last_break;
                break;
            }
            indent = (long)sp;
        }
        if ((long)sp < indent || (sp == 0 && doc_marker_at(r, line))) {
            r->pos = last_break; /* not ours: the caller reads on from this line */
            break;
        }
        size_t from = line + (size_t)indent, to = from;
        while (to < r->n && !brk(r, to))
            to++;
        int trailing_blank = from < to && is_blank(r->s[from]); /* a more indented line */
        if (folded && lead.len == 1 && lead.s[0] == '\n' && !leading_blank && !trailing_blank) {
            if (trail.len == 0)
                aj_buf_put(&b, " ", 1); /* folded: one break is a space */
            lead.len = 0;
        } else {
            buf_append(&b, &lead);
        }
        buf_append(&b, &trail);
        leading_blank = trailing_blank;
        aj_buf_put(&b, r->s + from, to - from);
        r->pos = to;
        if (!at_break(r))
            break; /* the end of the document */
        last_break = r->pos;
        r->pos += put_break(&lead, r, r->pos);
    }
    if (chomp != -1)
        buf_append(&b, &lead);
    if (chomp == 1)
        buf_append(&b, &trail);
    if (lead.oom || trail.oom)
        b.oom = 1;
    free(lead.s);
    free(trail.s);
    return scalar_from(r, &b, 0);
}

/* --- flow collections (and JSON) ------------------------------------------------------- */

static node *flow_node(reader *r);

/* White space, line breaks and comments between flow tokens. */
static void flow_space(reader *r)
{
    for (;;) {
        while (!at_end(r) && (is_blank(cur(r)) || at_break(r)))
            r->pos += at_break(r) ? break_len(r->s, r->n, r->pos) : 1;
        if (cur(r) == '#')
            skip_to_eol(r);
        else
            return;
    }
}

static int flow_indicator(char c)
{
    return c == ',' || c == '[' || c == ']' || c == '{' || c == '}';
}

/* A plain scalar inside a flow collection: up to an indicator, ": " or a comment;
 * line breaks fold into spaces. */
static node *plain_flow(reader *r)
{
    aj_buf b = {0};
    aj_buf_put(&b, "", 0);
    size_t start = r->pos;
    while (!at_end(r)) {
        char c = cur(r);
        if (flow_indicator(c) || (c == ':' && (is_space_or_end(r, 1) || flow_indicator(peek(r, 1)))) ||
            (c == '#' && r->pos > start && (is_blank(r->s[r->pos - 1]) || ends_break(r, r->pos))))
            break;
        if (at_break(r)) {
            trim_trailing(&b, 0);
            fold_breaks(r, &b);
            continue;
        }
        aj_buf_put(&b, &c, 1);
        r->pos++;
    }
    trim_trailing(&b, 0);
    if (r->pos == start) /* nothing readable here: stop rather than loop */
        r->stop = 1;
    return scalar_from(r, &b, 1);
}

static char *read_property(reader *r)
{
    size_t start = r->pos;
    while (!at_end(r) && !is_blank(cur(r)) && !at_break(r) && !flow_indicator(cur(r)))
        r->pos++;
    char *p = aj_strndup(r->s + start, r->pos - start);
    if (!p)
        r->oom = r->stop = 1;
    return p;
}

/* Tags (!...) and anchors (&...) before a node: the last tag is kept. */
static char *properties(reader *r, int flow)
{
    char *tag = NULL;
    for (;;) {
        if (flow)
            flow_space(r);
        else
            skip_blanks(r);
        if (cur(r) == '!') {
            free(tag);
            tag = read_property(r);
        } else if (cur(r) == '&') {
            free(read_property(r));
        } else {
            return tag;
        }
    }
}

static node *flow_collection(reader *r)
{
    char close = cur(r) == '[' ? ']' : '}';
    node *nd = new_node(r, close == ']' ? N_SEQ : N_MAP);
    r->pos++;
    if (!nd)
        return NULL;
    if (++r->depth > MAX_DEPTH) {
        r->stop = 1;
        r->depth--;
        return nd;
    }
    for (;;) {
        flow_space(r);
        if (at_end(r)) {
            r->stop = 1;
            break;
        }
        if (cur(r) == close) {
            r->pos++;
            break;
        }
        if (cur(r) == ',') { /* an empty entry: skip it */
            r->pos++;
            continue;
        }
        if (cur(r) == ']' || cur(r) == '}') { /* the wrong bracket */
            r->stop = 1;
            break;
        }
        node *first = flow_node(r);
        if (r->stop) {
            if (nd->kind == N_SEQ)
                add_item(r, nd, first);
            else
                node_free(first);
            break;
        }
        flow_space(r);
        if (nd->kind == N_MAP) {
            node *value = NULL;
            if (cur(r) == ':') {
                r->pos++;
                flow_space(r);
                if (cur(r) != ',' && cur(r) != close)
                    value = flow_node(r);
            }
            add_item(r, nd, first);
            add_item(r, nd, value);
            if (r->stop)
                break;
        } else {
            if (cur(r) == ':') { /* [a: b] is a sequence of one-entry mappings */
                r->pos++;
                flow_space(r);
                node *map = new_node(r, N_MAP);
                node *value = cur(r) != ',' && cur(r) != close ? flow_node(r) : NULL;
                if (map) {
                    add_item(r, map, first);
                    add_item(r, map, value);
                } else {
                    node_free(first);
                    node_free(value);
                }
                add_item(r, nd, map);
            } else {
                add_item(r, nd, first);
            }
            if (r->stop)
                break;
        }
        flow_space(r);
        if (cur(r) == ',')
            r->pos++;
        else if (cur(r) != close) {
            r->stop = 1;
            break;
        }
    }
    r->depth--;
    return nd;
}

static node *flow_node(reader *r)
{
    char *tag = properties(r, 1);
    node *nd;
    char c = cur(r);
    if (at_end(r))
        nd = NULL;
    else if (c == '[' || c == '{')
        nd = flow_collection(r);
    else if (c == '"')
        nd = double_quoted(r);
    else if (c == '\'')
        nd = single_quoted(r);
    else
        nd = plain_flow(r);
    if (!nd)
        nd = new_node(r, N_SCALAR);
    if (nd && tag) {
        free(nd->tag);
        nd->tag = tag;
    } else {
        free(tag);
    }
    return nd;
}

/* --- block collections ------------------------------------------------------------------- */

static node *block_value(reader *r, int owner, int map_value);

/* Is the rest of this line a mapping entry ("key: ...", "'key': ...")? */
static int at_key(const reader *r)
{
    size_t i = r->pos;
    const char *s = r->s;
    if (i >= r->n)
        return 0;
    char c = s[i];
    if (c == '[' || c == '{' || c == '#' || c == '|' || c == '>' || c == '%' || c == '@' ||
        c == '`' || c == '?' || brk(r, i))
        return 0;
    if (c == '-' && (i + 1 >= r->n || is_blank(s[i + 1]) || brk(r, i + 1)))
        return 0;
    if (c == '"' || c == '\'') {
        for (i++; i < r->n && !brk(r, i); i++) {
            if (s[i] == '\\' && c == '"') {
                i++;
                continue;
            }
            if (s[i] == c) {
                if (c == '\'' && i + 1 < r->n && s[i + 1] == '\'') {
                    i++;
                    continue;
                }
                i++;
                while (i < r->n && is_blank(s[i]))
                    i++;
                return i < r->n && s[i] == ':' &&
                       (i + 1 >= r->n || is_blank(s[i + 1]) || brk(r, i + 1));
            }
        }
        return 0;
    }
    for (; i < r->n && !brk(r, i); i++) {
        if (s[i] == '#' && i > r->pos && is_blank(s[i - 1]))
            return 0;
        if (s[i] == ':' && (i + 1 >= r->n || is_blank(s[i + 1]) || brk(r, i + 1)))
            return 1;
    }
    return 0;
}

/* A key at r->pos (at_key said so), then past its colon. */
static node *block_key(reader *r)
{
    char c = cur(r);
    node *key;
    if (c == '"' || c == '\'') {
        key = c == '"' ? double_quoted(r) : single_quoted(r);
        skip_blanks(r);
    } else {
        aj_buf b = {0};
        aj_buf_put(&b, "", 0);
        size_t start = r->pos;
        while (!at_end(r) && !(cur(r) == ':' && is_space_or_end(r, 1)))
            r->pos++;
        size_t end = r->pos;
        while (end > start && is_blank(r->s[end - 1]))
            end--;
        aj_buf_put(&b, r->s + start, end - start);
        key = scalar_from(r, &b, 1);
    }
    if (cur(r) == ':')
        r->pos++;
    else
        r->stop = 1;
    return key;
}

/* A block mapping whose first key is at r->pos, at column `indent`. */
static node *block_map(reader *r, int indent)
{
    node *nd = new_node(r, N_MAP);
    if (!nd)
        return NULL;
    if (++r->depth > MAX_DEPTH) {
        r->stop = 1;
        r->depth--;
        return nd;
    }
    for (;;) {
        node *key = block_key(r);
        if (r->stop) {
            node_free(key);
            break;
        }
        node *value = block_value(r, indent, 1);
        add_item(r, nd, key);
        add_item(r, nd, value);
        if (r->stop)
            break;
        size_t content;
        int next = peek_content_line(r, &content);
        if (next != indent)
            break;
        r->pos = content;
        if (!at_key(r)) {
            r->stop = 1; /* text at this indentation that is no entry */
            break;
        }
    }
    r->depth--;
    return nd;
}

/* A block sequence whose first "-" is at r->pos, at column `indent`. */
static node *block_seq(reader *r, int indent)
{
    node *nd = new_node(r, N_SEQ);
    if (!nd)
        return NULL;
    if (++r->depth > MAX_DEPTH) {
        r->stop = 1;
        r->depth--;
        return nd;
    }
    for (;;) {
        r->pos++; /* - */
        node *item = block_value(r, indent, 0);
        add_item(r, nd, item);
        if (r->stop)
            break;
        size_t content;
        int next = peek_content_line(r, &content);
        if (next != indent)
            break;
        size_t saved = r->pos;
        r->pos = content;
        if (!at_seq_entry(r)) {
            r->pos = saved;
            break;
        }
    }
    r->depth--;
    return nd;
}

/* A node that starts at r->pos on a line of its own, at column `indent`. */
static node *block_node_at(reader *r, int indent, int owner)
{
    if (at_seq_entry(r))
        return block_seq(r, indent);
    if (at_key(r))
        return block_map(r, indent);
    return block_value(r, owner, 0);
}

/* The value after "key:", "-" or "---" (r->pos is just past it): on this line, or on
 * the following lines when they are indented more than `owner` (the indentation of
 * the collection the value belongs to; -1 at the top). A mapping's value may also be
 * a sequence at the key's own indentation (as Psych writes it): `map_value`. */
static node *block_value(reader *r, int owner, int map_value)
{
    char *tag = properties(r, 0);
    node *nd = NULL;
    if (at_eol_or_comment(r)) {
        size_t content;
        int next = peek_content_line(r, &content);
        if (next > owner) {
            r->pos = content;
            if (++r->depth > MAX_DEPTH) {
                r->stop = 1;
            } else {
                nd = block_node_at(r, next, owner);
            }
            r->depth--;
        } else if (next == owner && map_value && next >= 0) {
            size_t saved = r->pos;
            r->pos = content;
            if (at_seq_entry(r))
                nd = block_seq(r, next);
            else
                r->pos = saved;
        }
        if (!nd && !r->oom) {
            nd = new_node(r, N_SCALAR); /* empty: null */
            if (nd)
                nd->plain = 1;
        }
    } else {
        char c = cur(r);
        int col = column(r);
        if (c == '|' || c == '>')
            nd = block_scalar(r, owner);
        else if (c == '"')
            nd = double_quoted(r);
        else if (c == '\'')
            nd = single_quoted(r);
        else if (c == '[' || c == '{')
            nd = flow_collection(r);
        else if (at_seq_entry(r))
            nd = block_seq(r, col);
        else if (at_key(r))
            nd = block_map(r, col);
        else
            nd = plain_block(r, owner);
        /* a quoted or flow value ends its line (a comment may follow) */
        if (nd && (c == '"' || c == '\'' || c == '[' || c == '{') && !r->stop &&
            !at_eol_or_comment(r))
            r->stop = 1;
    }
    if (nd && tag) {
        free(nd->tag);
        nd->tag = tag;
    } else {
        free(tag);
    }
    return nd;
}

/* --- documents ----------------------------------------------------------------------- */

typedef enum { F_TEXT, F_YAML, F_JSON } doc_format;

static const char *format_name(doc_format f)
{
    return f == F_YAML ? "yaml" : f == F_JSON ? "json" : "text";
}

/* Which form a document is in: YAML only when it says so ("---", as Rails' YAML columns
 * require), JSON when it opens a collection or a string, else text. */
static doc_format detect(const char *doc, size_t len, size_t *start)
{
    size_t i = 0;
    while (i < len && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\n' || doc[i] == '\r'))
        i++;
    *start = i;
    if (len - i >= 3 && !memcmp(doc + i, "---", 3) &&
        (len - i == 3 || doc[i + 3] == ' ' || doc[i + 3] == '\n' || doc[i + 3] == '\r' ||
         doc[i + 3] == '\t'))
        return F_YAML;
    if (i < len && (doc[i] == '{' || doc[i] == '[' || doc[i] == '"'))
        return F_JSON;
    return F_TEXT;
}

/* The tree of a YAML or JSON document that starts at `start` (NULL when empty, or
 * out of memory: *oom). */
static node *read_tree(const char *doc, size_t len, doc_format f, size_t start, int *oom)
{
    reader r = {doc, len, start, 0, 0, 0, f == F_JSON};
    node *root;
    if (f == F_JSON) {
        root = flow_node(&r);
    } else {
        r.pos = start + 3; /* past "---": the document's node follows, on this line or below */
        root = block_value(&r, -1, 0);
    }
    *oom = r.oom;
    if (r.oom) {
        node_free(root);
        return NULL;
    }
    return root;
}

/* The text of a scalar without a Ruby symbol's colon (":name" written plain). */
static const char *name_of(const node *nd, size_t *len)
{
    if (!nd || nd->kind != N_SCALAR || !nd->text) {
        *len = 0;
        return NULL;
    }
    if (nd->plain && nd->len > 1 && nd->text[0] == ':') {
        *len = nd->len - 1;
        return nd->text + 1;
    }
    *len = nd->len;
    return nd->text;
}

/* A YAML null: an empty or "~"/"null" plain scalar (a quoted one is a string). */
static int is_null_scalar(const node *nd)
{
    if (!nd)
        return 1;
    if (nd->kind != N_SCALAR || !nd->plain)
        return 0;
    if (!nd->text || nd->len == 0)
        return 1;
    return (nd->len == 1 && nd->text[0] == '~') ||
           (nd->len == 4 && (!memcmp(nd->text, "null", 4) || !memcmp(nd->text, "Null", 4) ||
                             !memcmp(nd->text, "NULL", 4)));
}

static const node *map_get(const node *map, const char *key)
{
    if (!map || map->kind != N_MAP)
        return NULL;
    size_t want = strlen(key);
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        size_t len;
        const char *k = name_of(map->items[i], &len);
        if (k && len == want && !memcmp(k, key, want))
            return map->items[i + 1];
    }
    return NULL;
}

/* --- base64 (Psych writes non-UTF-8 strings as !binary) ---------------------------------- */

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static char *b64_decode(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len / 4 * 3 + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(s[i]);
        if (v < 0)
            continue; /* line breaks, padding */
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    *out_len = o;
    return out;
}

/* --- errors -------------------------------------------------------------------------- */

typedef struct error_doc {
    aj_admin_error pub;
    aj_arena mem;
    char **backtrace;
} error_doc;

void aj_admin_error_free(aj_admin_error *e)
{
    if (!e)
        return;
    error_doc *d = (error_doc *)e;
    aj_arena_free(&d->mem);
    free(d);
}

/* The text of a scalar message, decoded from !binary when so tagged. */
static char *scalar_text(aj_arena *a, const node *nd)
{
    if (nd->tag && !strcmp(nd->tag, "!binary")) {
        size_t n = 0;
        char *raw = b64_decode(nd->text ? nd->text : "", nd->len, &n);
        if (!raw)
            return a->oom = 1, NULL;
        char *clean = aj_doc_clean(a, raw, n);
        free(raw);
        return clean;
    }
    return aj_doc_clean(a, nd->text ? nd->text : "", nd->len);
}

static void add_backtrace_line(error_doc *d, const char *s, size_t len)
{
    if (d->backtrace && d->pub.backtrace_count < AJ_DOC_BACKTRACE_LINES)
        d->backtrace[d->pub.backtrace_count++] = aj_doc_clean(&d->mem, s, len);
}

static void read_backtrace(error_doc *d, const node *bt)
{
    if (!bt)
        return;
    if (bt->kind == N_SEQ) {
        for (size_t i = 0; i < bt->n; i++) {
            const node *item = bt->items[i];
            if (item->kind == N_SCALAR && item->text && item->len)
                add_backtrace_line(d, item->text, item->len);
        }
    } else if (bt->kind == N_SCALAR && bt->text) {
        /* a traceback written as one string: its lines */
        size_t start = 0;
        for (size_t i = 0; i <= bt->len; i++) {
            if (i == bt->len || bt->text[i] == '\n') {
                size_t a = start, b = i;
                while (a < b && is_blank(bt->text[a]))
                    a++;
                if (b > a)
                    add_backtrace_line(d, bt->text + a, b - a);
                start = i + 1;
            }
        }
    }
}

/* The class a Ruby tag names: "!ruby/exception:Stripe::CardError" -> "Stripe::CardError". */
static const char *class_of_tag(aj_arena *a, const char *tag)
{
    static const char *const prefixes[] = {"!ruby/exception:", "!ruby/object:"};
    for (size_t i = 0; tag && i < 2; i++) {
        size_t n = strlen(prefixes[i]);
        if (!strncmp(tag, prefixes[i], n) && tag[n])
            return aj_doc_clean(a, tag + n, strlen(tag + n));
    }
    return NULL;
}

/* Class, message and backtrace out of the tree; 1 when it held either of the first two. */
static int fill_error(error_doc *d, const node *root)
{
    aj_arena *a = &d->mem;
    if (!root)
        return 0;
    if (root->kind == N_MAP) {
        d->pub.class_name = class_of_tag(a, root->tag);
        const node *cls = map_get(root, "class");
        if (!d->pub.class_name && cls && cls->kind == N_SCALAR && !is_null_scalar(cls))
            d->pub.class_name = aj_doc_clean(a, cls->text ? cls->text : "", cls->len);
        const node *msg = map_get(root, "message");
        if (msg && msg->kind == N_SCALAR && !is_null_scalar(msg))
            d->pub.message = scalar_text(a, msg);
        const node *bt = map_get(root, "backtrace");
        read_backtrace(d, bt ? bt : map_get(root, "traceback"));
        return d->pub.class_name != NULL || d->pub.message != NULL;
    }
    if (root->kind == N_SCALAR && !is_null_scalar(root)) {
        d->pub.message = scalar_text(a, root);
        d->pub.class_name = class_of_tag(a, root->tag);
        return 1;
    }
    return 0;
}

int aj_doc_error(const char *doc, size_t len, aj_admin_error **out)
{
    error_doc *d = calloc(1, sizeof *d);
    if (!d)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    d->pub.version = AJ_ADMIN_ERROR_VERSION;
    d->backtrace = aj_arena_alloc(&d->mem, AJ_DOC_BACKTRACE_LINES * sizeof *d->backtrace);
    size_t start = 0;
    doc_format f = detect(doc, len, &start);
    int understood = 0;
    if (f != F_TEXT) {
        int oom = 0;
        node *root = read_tree(doc, len, f, start, &oom);
        if (oom)
            d->mem.oom = 1;
        else
            understood = fill_error(d, root);
        node_free(root);
    }
    if (!understood) {
        /* shown as it is: the whole document is the message */
        d->pub.class_name = NULL;
        d->pub.backtrace_count = 0;
        d->pub.message = aj_doc_clean(&d->mem, doc + start, len - start);
        f = F_TEXT;
    }
    aj_buf b = {0};
    aj_buf_put(&b, "", 0);
    if (d->pub.class_name)
        aj_buf_puts(&b, d->pub.class_name);
    if (d->pub.class_name && d->pub.message && *d->pub.message)
        aj_buf_puts(&b, ": ");
    if (d->pub.message)
        aj_buf_puts(&b, d->pub.message);
    char *joined = arena_take(&d->mem, &b);
    d->pub.summary = joined ? aj_doc_one_line(&d->mem, joined) : NULL;
    if (d->mem.oom) {
        aj_admin_error_free(&d->pub);
        return aj_error_set(AJ_ENOMEM, "out of memory");
    }
    d->pub.format = format_name(f);
    d->pub.backtrace = (const char *const *)d->backtrace;
    *out = &d->pub;
    return AJ_OK;
}

int aj_admin_error_parse(aj_admin_error **out, const char *doc, size_t len)
{
    if (!out)
        return aj_error_set(AJ_EINVALID, "aj_admin_error_parse: out is NULL");
    if (!doc && len)
        return aj_error_set(AJ_EINVALID, "aj_admin_error_parse: NULL document with length %zu",
                            len);
    return aj_doc_error(doc ? doc : "", doc ? len : 0, out);
}

/* --- workflows ---------------------------------------------------------------------- */

long aj_doc_workflow_find(const aj_doc_workflow *wf, const char *name)
{
    for (size_t i = 0; i < wf->count; i++)
        if (!strcmp(wf->steps[i].name, name))
            return (long)i;
    return -1;
}

static void add_step(aj_arena *a, aj_doc_workflow *wf, aj_doc_step *steps, const node *key,
                     const node *def)
{
    size_t len;
    const char *name = name_of(key, &len);
    if (!name || !len || (len == 8 && !memcmp(name, AJ_RECOVERY_POINT_FINISHED, 8)))
        return;
    char *clean = aj_doc_clean(a, name, len);
    if (!clean || aj_doc_workflow_find(wf, clean) >= 0)
        return;
    aj_doc_step *st = &steps[wf->count++];
    st->name = clean;
    const node *awaits = map_get(def, "awaits");
    if (!awaits || awaits->kind != N_SEQ || awaits->n == 0)
        return;
    const char **jobs = aj_arena_alloc(a, awaits->n * sizeof *jobs);
    if (!jobs)
        return;
    st->awaits = jobs;
    for (size_t i = 0; i < awaits->n; i++) {
        const char *job = name_of(awaits->items[i], &len);
        if (job && len && (jobs[st->n_awaits] = aj_doc_clean(a, job, len)))
            st->n_awaits++;
    }
}

int aj_doc_workflow_read(aj_arena *a, const char *doc, size_t len, aj_doc_workflow *out)
{
    memset(out, 0, sizeof *out);
    size_t start = 0;
    if (!doc || !len || detect(doc, len, &start) == F_TEXT)
        return AJ_OK;
    int oom = 0;
    node *root = read_tree(doc, len, detect(doc, len, &start), start, &oom);
    if (!oom && root && root->kind == N_MAP && root->n >= 2) {
        size_t cap = root->n / 2 < MAX_STEPS ? root->n / 2 : MAX_STEPS;
        aj_doc_step *steps = aj_arena_alloc(a, cap * sizeof *steps);
        out->steps = steps;
        for (size_t i = 0; steps && i + 1 < root->n && out->count < cap; i += 2)
            add_step(a, out, steps, root->items[i], root->items[i + 1]);
    }
    node_free(root);
    if (oom || a->oom) {
        memset(out, 0, sizeof *out);
        return aj_error_set(AJ_ENOMEM, "out of memory");
    }
    return AJ_OK;
}
