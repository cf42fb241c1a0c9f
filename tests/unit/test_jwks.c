#include <criterion/criterion.h>
Test(jwks, placeholder) { cr_assert(1); }
