#include <criterion/criterion.h>
Test(ratelimit, placeholder) { cr_assert(1); }
