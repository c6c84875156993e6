//! Rate limiting for log lines a guest can trigger.
