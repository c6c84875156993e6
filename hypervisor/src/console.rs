//! Console multiplexer: cell output line by line with a name prefix, input focus and the escape key.
