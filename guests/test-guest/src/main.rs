//! The test guest.
#![no_std]
#![no_main]
