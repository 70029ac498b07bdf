/* Built against an installed libcellblock with pkg-config: runs one cell. */
#include <cellblock.h>
#include <stdio.h>

int main(void)
{
        char *argv[] = {"true", NULL};
        cb_policy *policy = cb_policy_new();
        cb_cell *cell;
        cb_result result;

        if (!policy || cb_spawn(policy, argv, NULL, &cell, &result) < 0 ||
            cb_cell_wait(cell, &result) < 0) {
                fprintf(stderr, "cell failed: %s\n", result.error_message);
                return 1;
        }
        cb_cell_free(cell);
        cb_policy_free(policy);
        printf("%s %d\n", cb_status_name(result.status), result.exit_code);
        return result.status == CB_EXITED && result.exit_code == 0 ? 0 : 1;
}
