/* `frugal demo`'s rl part (tools/demo.h). Not built yet: it says so and the demo goes on. */
#include <stdio.h>

#include "cli.h"
#include "demo.h"

int demo_rl(const demo_opts *o) {
    (void)o;
    printf("\nfrugal demo: the rl part is not built yet\n");
    return CLI_EXIT_OK;
}
