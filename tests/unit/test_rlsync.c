#include <criterion/criterion.h>
Test(rlsync, placeholder) { cr_assert(1); }
