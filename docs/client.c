/*
 * A C client of cellblock serve, with libcellblock:
 *
 *     cc client.c $(pkg-config --cflags --libs cellblock) -o client
 *     ./client SOCKET KEY_FILE PROGRAM [ARG...]
 *
 * runs PROGRAM in a cell with this process's stdin, stdout and stderr, with
 * a memory and time limit, and prints the cell's result as JSON on stderr.
 * The client authenticates the server before sending it anything.
 */
#include <cellblock.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
        const int stdio[3] = {0, 1, 2};
        cb_policy *policy = cb_policy_new();
        cb_client *client;
        cb_error err = {0};
        cb_result result;
        char *json;
        int pidfd;
        pid_t pid;

        if (argc < 4) {
                fprintf(stderr, "usage: %s SOCKET KEY_FILE PROGRAM [ARG...]\n", argv[0]);
                return 2;
        }
        if (!policy || cb_policy_set(policy, "memory", "256M", &err) < 0 ||
            cb_policy_set(policy, "timeout", "60", &err) < 0) {
                fprintf(stderr, "policy: %s\n", err.message);
                return 1;
        }
        client = cb_client_connect(argv[1], argv[2], &err);
        if (!client) {
                fprintf(stderr, "connect: %s\n", err.message);
                return 1;
        }
        if (cb_client_spawn(client, "cell-1", argv + 3, policy, stdio, false, &pidfd, &pid,
                            &err) < 0 ||
            cb_client_wait(client, "cell-1", &result, &err) < 0) {
                fprintf(stderr, "cell: %s\n", err.message);
                cb_client_close(client);
                return 1;
        }
        close(pidfd);
        json = cb_result_to_json(&result);
        fprintf(stderr, "%s\n", json ? json : "?");
        free(json);
        cb_client_close(client);
        cb_policy_free(policy);
        return cb_result_exit_status(&result);
}
