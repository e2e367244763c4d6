/*
 * vmm_command_line.h: the C contract between the `vmm` launcher and its ArgumentParser
 * front end, libVMMCommandLine.so (Examples/CommandLine), which `vmm` loads from beside
 * itself only when it cannot read its arguments alone.
 *
 * Why a library: `vmm` reads the plain forms of `vmm run` itself (RunFastParse.swift).
 * Linking ArgumentParser would map it and the FoundationEssentials it depends on into every
 * run: about 2 million instructions of dynamic loading and 0.8 ms before `main` (callgrind,
 * a Swift program with and without FoundationEssentials). Help, usage errors, completion
 * scripts, the other subcommands and unusual forms of `run` come here.
 *
 * Threads: called once, on the launcher's main thread, before any VM exists.
 */
#ifndef VMM_COMMAND_LINE_H
#define VMM_COMMAND_LINE_H

#include <stdint.h>

/* Version 2: a usage error is emitted (key "error") for the launcher to print, no
 * longer written by the library, so one printer escapes and bounds the argument text
 * the message repeats. */
#define VMM_COMMAND_LINE_VERSION 2u
/* The symbol `vmm` looks up (dlsym), of type vmm_command_line_parse_fn. */
#define VMM_COMMAND_LINE_PARSE "vmm_command_line_parse"

/* One parsed item. The first is key "command" with the subcommand's name ("run",
 * "restore", "plugins", "ctl"). Then every value given, in declaration order: an option
 * by its long name with its value as given (a repeatable one once per value, in order);
 * a flag that is set by its long name with value NULL; a positional argument by its
 * name ("image", "dir", "path", "socket", "action", "operand"). Options not given and
 * flags not set are not emitted. Numbers are emitted in Swift's description of the
 * parsed value, which reads back to the same value. The strings live for the call only. */
typedef void (*vmm_command_line_emit_fn)(void *ctx, const char *key, const char *value);

/* A usage error is one item, key "error", value ArgumentParser's message with no
 * "Error: " prefix and no usage text (it may repeat any argument's bytes, newlines and
 * escape sequences included: the launcher escapes and bounds it before printing). */

/* argc/argv: the arguments after the program name. status_help, ctl_status_help: the
 * exit statuses of `vmm run` and `vmm ctl`, one line each, for their help (the launcher
 * owns the numbers). usage_status: the status of a usage error.
 * Returns -1 when the arguments parsed (emit was called for each item); otherwise the
 * status the process should exit with: 0 after help, versions and completion scripts
 * written on stdout, or usage_status after a usage error emitted as key "error" (nothing
 * written). A version other than VMM_COMMAND_LINE_VERSION is refused with usage_status
 * and one line "vmm: <problem>" written on stderr (emit may be absent then). */
typedef int32_t (*vmm_command_line_parse_fn)(uint32_t version, int32_t argc, const char *const *argv,
                                             const char *status_help, const char *ctl_status_help,
                                             int32_t usage_status, void *ctx, vmm_command_line_emit_fn emit);

#endif
