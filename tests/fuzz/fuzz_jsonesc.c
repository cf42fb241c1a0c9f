/* fuzz_jsonesc.c - libFuzzer driver for rw_json_escape (the access log's
 * escaper). Input: byte 0 picks the output room, the rest is the string.
 * The output must be a valid JSON string body (no raw control character or
 * quote, only known escapes, valid UTF-8), never longer than the room, and
 * decoding it (\u00XX back to the byte XX) must give back the input, or a
 * prefix of it when the room ran out. */
#include "fuzz_common.h"
#include "ringway/jsonesc.h"

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t room = data[0] == 255 ? 6 * (size - 1) + 8 : data[0];
    char *src = fuzz_copy(data + 1, size - 1);
    char *out = malloc(room ? room : 1);
    FUZZ_CHECK(out != NULL);
    int truncated = 0;
    size_t n = rw_json_escape(out, room, src, size - 1, &truncated);
    FUZZ_CHECK(n <= room);
    FUZZ_CHECK(data[0] != 255 || !truncated); /* 6 bytes per input byte always fit */
    /* decode, checking the JSON rules on the way */
    char *dec = malloc(n ? n : 1);
    FUZZ_CHECK(dec != NULL);
    size_t d = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)out[i];
        FUZZ_CHECK(c >= 0x20 && c != '"' && c != 0x7F);
        if (c == '\\') {
            FUZZ_CHECK(i + 1 < n);
            char e = out[i + 1];
            if (e == 'u') {
                FUZZ_CHECK(i + 5 < n && out[i + 2] == '0' && out[i + 3] == '0');
                int h = hexval(out[i + 4]), l = hexval(out[i + 5]);
                FUZZ_CHECK(h >= 0 && l >= 0);
                dec[d++] = (char)(h * 16 + l);
                i += 6;
            } else {
                FUZZ_CHECK(e == '"' || e == '\\' || e == 'n' || e == 'r' || e == 't');
                dec[d++] = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
                i += 2;
            }
            continue;
        }
        dec[d++] = (char)c; /* raw bytes: the escaper let through only valid UTF-8 */
        i++;
    }
    FUZZ_CHECK(d <= size - 1 && memcmp(dec, src, d) == 0);
    FUZZ_CHECK(truncated ? d < size - 1 : d == size - 1);
    free(dec);
    free(out);
    free(src);
    return 0;
}
