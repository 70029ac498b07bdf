/* Any bytes as a result object; what parses must serialise and parse back unchanged. */
#include "cellblock.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *json)
{
        fprintf(stderr, "%s: %s\n", what, json ? json : "(nothing)");
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        cb_result r, back;
        cb_error err;
        char *json, *again;

        if (cb_result_from_json((const char *)data, size, &r, &err) != 0)
                return 0;
        (void)cb_result_exit_status(&r);
        json = cb_result_to_json(&r);
        if (!json)
                fail("cb_result_to_json returned NULL for a parsed result", NULL);
        if (cb_result_from_json(json, strlen(json), &back, &err) != 0)
                fail("cb_result_to_json wrote JSON that does not parse back", json);
        if (cb_result_exit_status(&back) != cb_result_exit_status(&r))
                fail("exit status changed after a round trip", json);
        again = cb_result_to_json(&back);
        if (!again || strcmp(json, again) != 0)
                fail("JSON changed after a round trip", json);
        free(json);
        free(again);
        return 0;
}
