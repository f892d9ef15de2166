/* `parley webhook send`: sends one signed event envelope to a receiver with
 * the delivery policy of hooks/retry.h applied, printing every attempt, so a
 * developer can check a receiver before routing pubs to it. */
#ifndef PL_CLI_WEBHOOK_H
#define PL_CLI_WEBHOOK_H

/* Runs the command (argv[0] is "webhook", argv[1] the subcommand). Returns
 * the exit status: 0 delivered, 1 not delivered (dead-lettered, disabled,
 * aborted, refused by the SSRF guard), 2 on a usage error (said on stderr).
 * Calls curl_global_init itself, before starting the sender's thread. */
int webhook_main(int argc, char **argv);

#endif
