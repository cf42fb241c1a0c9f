/* test_jsonesc.c - rw_json_escape: what the access log writes for untrusted bytes. */
#include <criterion/criterion.h>
#include <string.h>

#include "ringway/jsonesc.h"

static const char *esc(const char *s, size_t len, size_t cap, int *trunc)
{
    static char out[512];
    size_t n = rw_json_escape(out, cap, s, len, trunc);
    out[n] = '\0';
    return out;
}

Test(jsonesc, plain_and_specials)
{
    int t;
    cr_assert_str_eq(esc("/api/v1?x=1", 11, 100, &t), "/api/v1?x=1");
    cr_assert_eq(t, 0);
    cr_assert_str_eq(esc("a\"b\\c", 5, 100, &t), "a\\\"b\\\\c");
    cr_assert_str_eq(esc("\n\r\t\x01\x7f", 5, 100, &t), "\\n\\r\\t\\u0001\\u007f");
    cr_assert_str_eq(esc("\0x", 2, 100, &t), "\\u0000x");
}

Test(jsonesc, utf8_valid_kept_invalid_escaped)
{
    int t;
    cr_assert_str_eq(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, 100, &t),
                     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    cr_assert_str_eq(esc("\xc0\xaf", 2, 100, &t), "\\u00c0\\u00af");                       /* overlong '/' */
    cr_assert_str_eq(esc("\xed\xa0\x80", 3, 100, &t), "\\u00ed\\u00a0\\u0080");            /* a surrogate */
    cr_assert_str_eq(esc("\xf4\x90\x80\x80", 4, 100, &t), "\\u00f4\\u0090\\u0080\\u0080"); /* past U+10FFFF */
    cr_assert_str_eq(esc("\xe2\x82", 2, 100, &t), "\\u00e2\\u0082");                       /* truncated */
    cr_assert_str_eq(esc("\xff", 1, 100, &t), "\\u00ff");
}

Test(jsonesc, truncation_never_splits)
{
    int t;
    cr_assert_str_eq(esc("abcdef", 6, 3, &t), "abc");
    cr_assert_eq(t, 1);
    cr_assert_str_eq(esc("ab\x01", 3, 5, &t), "ab"); /* \u0001 needs 6 */
    cr_assert_eq(t, 1);
    cr_assert_str_eq(esc("a\xe2\x82\xac", 4, 3, &t), "a"); /* the euro sign needs 3 */
    cr_assert_eq(t, 1);
    cr_assert_str_eq(esc("", 0, 0, &t), "");
    cr_assert_eq(t, 0);
}
