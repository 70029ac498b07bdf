/* What must hold for any policy, however it was built (used by the policy fuzz targets). */
#ifndef CB_FUZZ_POLICY_CHECK_H
#define CB_FUZZ_POLICY_CHECK_H

#include "cellblock.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_fail(const char *what, const char *detail)
{
        fprintf(stderr, "%s: %s\n", what, detail ? detail : "(nothing)");
        abort();
}

static size_t json_key_count(const char *json)
{
        json_t *o = json_loads(json, 0, NULL);
        size_t n = json_object_size(o);

        json_decref(o);
        return n;
}

/* The policy as JSON, which must hold as many keys as a new policy's. */
static char *complete_json(const cb_policy *p)
{
        static size_t keys;
        char *json;

        if (!keys) {
                cb_policy *fresh = cb_policy_new();

                json = fresh ? cb_policy_to_json(fresh) : NULL;
                keys = json ? json_key_count(json) : 0;
                free(json);
                cb_policy_free(fresh);
                if (!keys)
                        fuzz_fail("no JSON for a new policy", NULL);
        }
        json = cb_policy_to_json(p);
        if (!json)
                fuzz_fail("cb_policy_to_json returned NULL", NULL);
        if (json_key_count(json) != keys)
                fuzz_fail("cb_policy_to_json left keys out", json);
        return json;
}

/* Loads json into a new policy, which must work, and returns that policy's JSON. */
static char *reload(const char *json, int *valid)
{
        cb_policy *p = cb_policy_new();
        cb_error err;
        char *again;

        if (!p)
                abort();
        if (cb_policy_apply_json(p, json, strlen(json), &err) != 0) {
                fprintf(stderr, "%s: %s\n", err.field, err.message);
                fuzz_fail("cb_policy_to_json wrote JSON that does not load back", json);
        }
        *valid = cb_policy_validate(p, &err);
        again = complete_json(p);
        cb_policy_free(p);
        return again;
}

/*
 * p must serialise with every key and load back, validating the same way,
 * and serialising again must give the same JSON.  JSON numbers are rounded
 * to nanoseconds, so a policy set from text is only stable after one trip.
 */
static void check_policy_round_trip(const cb_policy *p, int exact)
{
        cb_error err;
        int valid = cb_policy_validate(p, &err), valid_1, valid_2;
        char *first = complete_json(p);
        char *second = reload(first, &valid_1);
        char *third = reload(second, &valid_2);

        if (valid_1 != valid || valid_2 != valid)
                fuzz_fail("validation changed after a JSON round trip", first);
        if (exact && strcmp(first, second) != 0)
                fuzz_fail("JSON changed after a round trip", first);
        if (strcmp(second, third) != 0)
                fuzz_fail("JSON changed after a second round trip", second);
        free(first);
        free(second);
        free(third);
}

#endif
