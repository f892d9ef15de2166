/* `parley verify`: checks a saved webhook request (its headers and raw body)
 * against one or more secrets in the Standard Webhooks, hmac-sha256 or
 * Stripe scheme, and explains a mismatch only by causes it re-computed. */
#ifndef PL_CLI_VERIFY_H
#define PL_CLI_VERIFY_H

/* Runs the command (argv[0] is "verify"). Returns the exit status: 0 when a
 * signature matches, 1 on a mismatch (with a diagnosis on stdout), 2 on a
 * usage error (said on stderr). */
int verify_main(int argc, char **argv);

#endif
