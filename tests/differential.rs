//! Placeholder for the differential test.
