/* Input "KEY\0VALUE" for cb_policy_set() on a new policy, then validation and serialisation. */
#include "policy_check.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *nul = memchr(data, '\0', size);
        size_t key_len = nul ? (size_t)(nul - data) : size;
        char *key = strndup((const char *)data, key_len);
        /* the value ends at the next NUL, if any */
        char *text = nul ? strndup((const char *)nul + 1, size - key_len - 1) : strdup("");
        cb_policy *p = cb_policy_new();
        cb_error err = {{0}};

        if (!key || !text || !p)
                abort();
        if (cb_policy_set(p, key, text, &err) == 0)
                check_policy_round_trip(p, 0);
        else if (err.message[0] == '\0')
                fuzz_fail("refused without a message", key);
        cb_policy_free(p);
        free(key);
        free(text);
        return 0;
}
