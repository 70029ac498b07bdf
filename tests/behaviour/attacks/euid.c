/* Prints the effective uid it runs with: a setuid-root copy shows whether it took effect. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
        printf("%u\n", (unsigned)geteuid());
        return 0;
}
