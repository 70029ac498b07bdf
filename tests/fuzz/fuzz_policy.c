/* Any bytes as a JSON policy for a new policy, then validation and serialisation. */
#include "policy_check.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        cb_policy *p = cb_policy_new();
        cb_error err = {{0}};

        if (!p)
                abort();
        /* a refused profile may leave some keys applied; the policy must stay sound */
        if (cb_policy_apply_json(p, (const char *)data, size, &err) != 0 && !err.message[0])
                fuzz_fail("refused without a message", NULL);
        check_policy_round_trip(p, 1);
        cb_policy_free(p);
        return 0;
}
