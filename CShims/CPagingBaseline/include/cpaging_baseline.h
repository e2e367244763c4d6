/*
 * cpaging_baseline.h - the raw C userfaultfd loop the Swift demand pager is measured
 * against: one thread reads MISSING faults, preads the page from a snapshot file and
 * installs it with UFFDIO_COPY. No page tracking, no vCPU kicks: the floor.
 */
#ifndef CPAGING_BASELINE_H
#define CPAGING_BASELINE_H
#include <stddef.h>

/* A blocking-mode userfaultfd with [host, host+size) registered MISSING; -1 on error. */
int cpaging_register(void *host, size_t size);

/* Serves faults until stop_fd (an eventfd) becomes readable; returns pages installed,
 * or -1 on error. snapshot_offset is the file offset of byte `host`. */
long cpaging_serve(int uffd, void *host, size_t size, int snapshot_fd, long snapshot_offset, int stop_fd);

#endif
