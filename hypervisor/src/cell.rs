//! Runtime state of the partition: cells, their vCPUs and lifecycle.
