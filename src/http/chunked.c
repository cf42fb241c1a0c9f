/* chunked.c - validating scanner for a chunked body (RFC 9112 7.1) that the
 * proxy forwards unchanged, and the decoder built on it (the one chunked
 * parser: the proxy's de-chunking for HTTP/1.0 clients and the JWKS fetcher
 * use it too). It keeps no pointer into the data: all state is in
 * the small rw_chunked struct owned by the caller, so input may be split at any
 * byte. Chunk data is skipped in bulk; only size lines, CRLFs and trailers are
 * looked at byte by byte.
 *
 * Accepted grammar (stricter than "be liberal"):
 *   chunk-size  = 1*16HEXDIG, value <= 2^62
 *   chunk-ext   = *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )
 *   size line   <= 4096 bytes before its CRLF
 *   chunk       = size-line CRLF data CRLF          (exactly CRLF after the data)
 *   last-chunk  = 1*"0" [ chunk-ext ] CRLF
 *   trailers    = *( token ":" *(VCHAR / obs-text / SP / HTAB) CRLF ) CRLF,
 *                 at most 16384 bytes including the final CRLF
 * Bare CR, bare LF, NUL and other controls are errors everywhere.
 */
#include "ringway/http.h"

#define MAX_SIZE_LINE 4096u
#define MAX_TRAILER_BYTES 16384u
#define MAX_HEX_DIGITS 16u
#define MAX_CHUNK_SIZE (UINT64_C(1) << 62)

enum {
    K_TCHAR = 1,  /* token character */
    K_VALUE = 2,  /* field value / quoted-pair byte: VCHAR, obs-text, SP, HTAB */
    K_QDTEXT = 4, /* qdtext: HTAB SP ! #-[ ]-~ obs-text */
    K_HEX = 8,
};

/* clang-format off */
static const uint8_t kc[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x06, 0x07, 0x02, 0x07, 0x07, 0x07, 0x07, 0x07, 0x06, 0x06, 0x07, 0x07, 0x06, 0x07, 0x07, 0x06,
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
    0x06, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07,
    0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x06, 0x02, 0x06, 0x07, 0x07,
    0x07, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07,
    0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x06, 0x07, 0x06, 0x07, 0x00,
    0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
    0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
    0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
    0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
    0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
    0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
    0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
    0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
};
/* clang-format on */

enum {
    CS_SIZE = 0,     /* chunk-size hex digits; line_len counts them */
    CS_EXT_WS,       /* BWS after the size or a value: WS or ';' */
    CS_EXT_PRE_NAME, /* after ';': BWS then the extension name */
    CS_EXT_NAME,
    CS_EXT_POST_NAME, /* BWS after a name: '=' or ';' */
    CS_EXT_PRE_VAL,   /* after '=': BWS then token or quoted-string */
    CS_EXT_VAL,       /* token value */
    CS_EXT_QSTR,      /* inside a quoted-string */
    CS_EXT_QPAIR,     /* after a backslash in a quoted-string */
    CS_EXT_QEND,      /* after the closing quote: WS, ';' or CR */
    CS_SIZE_LF,       /* CR of the size line seen */
    CS_DATA,          /* remaining bytes of chunk data */
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TR_START, /* start of a trailer line, or CR of the final CRLF */
    CS_TR_NAME,
    CS_TR_VALUE,
    CS_TR_LF,
    CS_FINAL_LF,
    CS_DONE,
    CS_ERROR,
};

void rw_chunked_init(rw_chunked *c)
{
    c->state = CS_SIZE;
    c->remaining = 0;
    c->line_len = 0;
    c->trailer_bytes = 0;
}

/* The scanner; *keep gets how many of the scanned bytes come before the
 * trailer section. With wbuf (== buf, writable), chunk data is also moved to
 * the front of it as it is seen, *dlen counting the data bytes: decoding in
 * the same pass as validating. */
static ssize_t scan(rw_chunked *c, const char *buf, size_t len, bool *done, size_t *keep, char *wbuf,
                    size_t *dlen)
{
    *done = false;
    if (c->state == CS_DONE) {
        *done = true;
        *keep = 0;
        return 0;
    }
    if (c->state == CS_ERROR)
        return -1;
    /* Until the last-chunk line ends, every byte is kept. */
    *keep = c->state >= CS_TR_START ? 0 : SIZE_MAX;

    size_t i = 0;
    while (i < len) {
        int st = c->state;
        if (st == CS_DATA) {
            uint64_t n = RW_MIN(c->remaining, (uint64_t)(len - i));
            if (wbuf != NULL) {
                memmove(wbuf + *dlen, wbuf + i, (size_t)n);
                *dlen += (size_t)n;
            }
            i += (size_t)n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CS_DATA_CR;
            continue;
        }
        unsigned char ch = (unsigned char)buf[i++];
        uint8_t k = kc[ch];

        if (st < CS_SIZE_LF && ch != '\r' && ++c->line_len > MAX_SIZE_LINE)
            goto fail;
        if (st >= CS_TR_START && ++c->trailer_bytes > MAX_TRAILER_BYTES)
            goto fail;

        switch (st) {
        case CS_SIZE:
            if (k & K_HEX) {
                /* line_len already counts this digit */
                if (c->line_len > MAX_HEX_DIGITS)
                    goto fail;
                unsigned v = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
                c->remaining = (c->remaining << 4) | v;
                if (c->remaining > MAX_CHUNK_SIZE)
                    goto fail;
                break;
            }
            if (c->line_len == (ch == '\r' ? 0u : 1u))
                goto fail; /* no digit at all */
            if (ch == '\r')
                c->state = CS_SIZE_LF;
            else if (ch == ';')
                c->state = CS_EXT_PRE_NAME;
            else if (ch == ' ' || ch == '\t')
                c->state = CS_EXT_WS;
            else
                goto fail;
            break;
        case CS_EXT_WS:
            if (ch == ';')
                c->state = CS_EXT_PRE_NAME;
            else if (ch != ' ' && ch != '\t')
                goto fail;
            break;
        case CS_EXT_PRE_NAME:
            if (k & K_TCHAR)
                c->state = CS_EXT_NAME;
            else if (ch != ' ' && ch != '\t')
                goto fail;
            break;
        case CS_EXT_NAME:
            if (k & K_TCHAR)
                break;
            if (ch == '=')
                c->state = CS_EXT_PRE_VAL;
            else if (ch == ';')
                c->state = CS_EXT_PRE_NAME;
            else if (ch == ' ' || ch == '\t')
                c->state = CS_EXT_POST_NAME;
            else if (ch == '\r')
                c->state = CS_SIZE_LF;
            else
                goto fail;
            break;
        case CS_EXT_POST_NAME:
            if (ch == '=')
                c->state = CS_EXT_PRE_VAL;
            else if (ch == ';')
                c->state = CS_EXT_PRE_NAME;
            else if (ch != ' ' && ch != '\t')
                goto fail;
            break;
        case CS_EXT_PRE_VAL:
            if (k & K_TCHAR)
                c->state = CS_EXT_VAL;
            else if (ch == '"')
                c->state = CS_EXT_QSTR;
            else if (ch != ' ' && ch != '\t')
                goto fail;
            break;
        case CS_EXT_VAL:
            if (k & K_TCHAR)
                break;
            /* a token value ends like a quoted-string does */
            __attribute__((fallthrough));
        case CS_EXT_QEND:
            if (ch == ';')
                c->state = CS_EXT_PRE_NAME;
            else if (ch == ' ' || ch == '\t')
                c->state = CS_EXT_WS;
            else if (ch == '\r')
                c->state = CS_SIZE_LF;
            else
                goto fail;
            break;
        case CS_EXT_QSTR:
            if (ch == '"')
                c->state = CS_EXT_QEND;
            else if (ch == '\\')
                c->state = CS_EXT_QPAIR;
            else if (!(k & K_QDTEXT))
                goto fail;
            break;
        case CS_EXT_QPAIR:
            if (!(k & K_VALUE))
                goto fail;
            c->state = CS_EXT_QSTR;
            break;
        case CS_SIZE_LF:
            if (ch != '\n')
                goto fail;
            c->line_len = 0;
            c->state = c->remaining ? CS_DATA : CS_TR_START;
            if (c->state == CS_TR_START)
                *keep = i; /* the trailer section starts after this LF */
            break;
        case CS_DATA_CR:
            if (ch != '\r')
                goto fail;
            c->state = CS_DATA_LF;
            break;
        case CS_DATA_LF:
            if (ch != '\n')
                goto fail;
            c->state = CS_SIZE;
            c->line_len = 0;
            c->remaining = 0;
            break;
        case CS_TR_START:
            if (ch == '\r')
                c->state = CS_FINAL_LF;
            else if (k & K_TCHAR)
                c->state = CS_TR_NAME;
            else
                goto fail; /* obs-fold, empty name or a bad byte */
            break;
        case CS_TR_NAME:
            if (ch == ':')
                c->state = CS_TR_VALUE;
            else if (!(k & K_TCHAR))
                goto fail;
            break;
        case CS_TR_VALUE:
            if (ch == '\r')
                c->state = CS_TR_LF;
            else if (!(k & K_VALUE))
                goto fail;
            break;
        case CS_TR_LF:
            if (ch != '\n')
                goto fail;
            c->state = CS_TR_START;
            break;
        case CS_FINAL_LF:
            if (ch != '\n')
                goto fail;
            c->state = CS_DONE;
            *done = true;
            if (*keep > i)
                *keep = i;
            return (ssize_t)i;
        default:
            goto fail;
        }
    }
    if (*keep > len)
        *keep = len;
    return (ssize_t)len;

fail:
    c->state = CS_ERROR;
    return -1;
}

ssize_t rw_chunked_scan(rw_chunked *c, const char *buf, size_t len, bool *done)
{
    bool unused;
    size_t keep;
    return scan(c, buf, len, done != NULL ? done : &unused, &keep, NULL, NULL);
}

ssize_t rw_chunked_scan_drop_trailers(rw_chunked *c, const char *buf, size_t len, bool *done, size_t *keep)
{
    return scan(c, buf, len, done, keep, NULL, NULL);
}

ssize_t rw_chunked_decode(rw_chunked *c, char *buf, size_t len, bool *done, size_t *data_len)
{
    bool unused;
    size_t keep;
    *data_len = 0;
    return scan(c, buf, len, done != NULL ? done : &unused, &keep, buf, data_len);
}
