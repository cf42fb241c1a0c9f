#include <criterion/criterion.h>
Test(filters, placeholder) { cr_assert(1); }
