"""`make audit`: fuzzed events, injected faults, IAM mutation, static scans and hostile artifacts, each
run against the functions' real handlers in the in-process emulator, summed up in one table."""
