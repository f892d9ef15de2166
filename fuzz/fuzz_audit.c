/* libFuzzer target for obs/audit: the input is an audit log file handed to
 * the verifier. It must never crash, and when it accepts the bytes every
 * line must have counted as one record (nothing skipped, nothing merged). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "obs/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    audit_report r;
    int rc = audit_verify_mem((const char *)data, size, &r);
    uint64_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (rc == 0 && r.records != lines) abort();
    if (rc != 0 && (r.bad_line == 0 || r.records != r.bad_line - 1 || !r.why[0])) abort();
    return 0;
}
