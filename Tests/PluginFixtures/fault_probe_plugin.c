/*
 * fault-probe: a memory-fault handler that reports every record it sees, for the tests
 * of which handler sees which fault (ABI 1.2). Each call appends one trace entry to
 * guest memory at `trace` (qword 0 counts the entries; entry n is 6 qwords at
 * trace + 8 + 48 n: annotated, gpa, size, flags, memory_fault_known_flags, err_no) and
 * answers `verdict`.
 * Config: trace=GPA (required), verdict=handled|notmine|replaced (default notmine),
 *         base=N, length=N (default 0/0: the whole space), priority=N,
 *         class=N, flags=N (the descriptor's exit class and flags, for refusal tests),
 *         fill=N (first writes N bytes of 0x2a from the faulting page's start with
 *         write_guest; a refusal fails the exit, naming the answer).
 */
#define _GNU_SOURCE
#include "vmm_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct probe {
    const vmm_host_t *host;
    uint64_t trace, base, length, fill;
    vmm_verdict_t verdict;
    int32_t priority;
    uint32_t exit_class, flags;
} probe_t;

static char init_error[256];

static vmm_verdict_t handle(void *user, vmm_exit_t *ex) {
    probe_t *p = user;
    const vmm_exit_memory_fault_t *f = &ex->memory_fault;
    uint64_t known = VMM_HAS_FIELD(ex, vmm_exit_t, memory_fault_known_flags) ? ex->memory_fault_known_flags : 0;
    uint64_t entry[6] = {f->annotated, f->gpa, f->size, f->flags, known, (uint64_t)(int64_t)f->err_no};
    uint64_t count = 0;
    if (p->fill && f->annotated) {
        static unsigned char bytes[1 << 16];
        static char why[128];
        uint64_t page = f->gpa & ~0xfffull;
        memset(bytes, 0x2a, sizeof bytes);
        int rc = p->host->write_guest(p->host->host_data, page, bytes, p->fill < sizeof bytes ? p->fill : sizeof bytes);
        if (rc != 0) {
            snprintf(why, sizeof why, "fault-probe: write_guest of %llu bytes at 0x%llx answered %d",
                     (unsigned long long)p->fill, (unsigned long long)page, rc);
            ex->message = why;
            return VMM_FAIL;
        }
    }
    if (p->host->read_guest(p->host->host_data, p->trace, &count, sizeof count) != 0 ||
        p->host->write_guest(p->host->host_data, p->trace + 8 + 48 * count, entry, sizeof entry) != 0) {
        ex->message = "fault-probe: cannot write the trace";
        return VMM_FAIL;
    }
    count++;
    p->host->write_guest(p->host->host_data, p->trace, &count, sizeof count);
    return p->verdict;
}

static void *probe_init(const vmm_host_t *host, const char *config, const char **error_out) {
    probe_t *p = calloc(1, sizeof *p);
    char copy[256];
    *error_out = init_error;
    if (!p || strlen(config) >= sizeof copy) {
        snprintf(init_error, sizeof init_error, "fault-probe: bad config");
        free(p);
        return NULL;
    }
    p->host = host;
    p->verdict = VMM_NOT_MINE;
    p->exit_class = VMM_EXIT_MEMORY_FAULT;
    strcpy(copy, config);
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq)
            continue;
        *eq = 0;
        const char *v = eq + 1;
        if (strcmp(item, "trace") == 0) p->trace = strtoull(v, NULL, 0);
        else if (strcmp(item, "base") == 0) p->base = strtoull(v, NULL, 0);
        else if (strcmp(item, "length") == 0) p->length = strtoull(v, NULL, 0);
        else if (strcmp(item, "fill") == 0) p->fill = strtoull(v, NULL, 0);
        else if (strcmp(item, "priority") == 0) p->priority = (int32_t)strtol(v, NULL, 0);
        else if (strcmp(item, "class") == 0) p->exit_class = (uint32_t)strtoul(v, NULL, 0);
        else if (strcmp(item, "flags") == 0) p->flags = (uint32_t)strtoul(v, NULL, 0);
        else if (strcmp(item, "verdict") == 0)
            p->verdict = strcmp(v, "handled") == 0 ? VMM_HANDLED : strcmp(v, "replaced") == 0 ? VMM_BACKING_REPLACED : VMM_NOT_MINE;
    }
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = p->exit_class;
    d.flags = p->flags;
    d.base = p->base;
    d.length = p->length;
    d.priority = p->priority;
    d.handle = handle;
    d.user = p;
    d.name = p->length ? "range" : "whole-space";
    const char *why = NULL;
    if (host->register_handler(host->host_data, &d, &why) != 0) {
        snprintf(init_error, sizeof init_error, "%s", why ? why : "register_handler failed");
        free(p);
        return NULL;
    }
    return p;
}

static void probe_destroy(void *instance) { free(instance); }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.fault-probe", "1.0.0", "reports the memory-fault records it sees",
    probe_init, probe_destroy, NULL,
};
