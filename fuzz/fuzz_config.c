/* Fuzzes the YAML configuration loader: any input either loads or fails with a LINE:COL position.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "config/config.h"
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    config c;
    char err[256];
    if (config_load_string(&c, (const char *)data, size, err, sizeof(err)) == 0) {
        config_namespace(&c, "chat:x", 6);
        config_release(&c);
    } else {
        int l, col;
        if (sscanf(err, "%d:%d: ", &l, &col) != 2 || l < 1 || col < 1) __builtin_trap();
    }
    return 0;
}
