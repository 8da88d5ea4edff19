//! Column builders are finished once per flush, and the next batch is
//! about as large as the last: each builder starts it with the room the
//! last one used (bounded), instead of growing from nothing again (arrow's
//! `finish` leaves no capacity) — a chain of reallocations and fresh pages
//! on every flush otherwise.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BooleanBuilder, PrimitiveBuilder, StringBuilder,
};
use arrow::datatypes::ArrowPrimitiveType;

/// A column builder that starts its next batch with the room this one used.
pub trait FinishKeepingRoom {
    fn finish_keeping_room(&mut self) -> ArrayRef;
}

/// Rows and value bytes a builder keeps room for after a flush, whatever
/// the batch it finished.
pub(super) const MAX_KEPT_ROWS: usize = 16 * 1024;
const MAX_KEPT_VALUE_BYTES: usize = 4 << 20;

impl FinishKeepingRoom for StringBuilder {
    fn finish_keeping_room(&mut self) -> ArrayRef {
        let rows = self.len().min(MAX_KEPT_ROWS);
        let bytes = self.values_slice().len().min(MAX_KEPT_VALUE_BYTES);
        let array = self.finish();
        *self = StringBuilder::with_capacity(rows, bytes);
        Arc::new(array)
    }
}

impl<T: ArrowPrimitiveType> FinishKeepingRoom for PrimitiveBuilder<T> {
    fn finish_keeping_room(&mut self) -> ArrayRef {
        let rows = self.len().min(MAX_KEPT_ROWS);
        let array = self.finish();
        // The data type carries what the type parameter does not (a timezone).
        *self = PrimitiveBuilder::with_capacity(rows).with_data_type(array.data_type().clone());
        Arc::new(array)
    }
}

impl FinishKeepingRoom for BooleanBuilder {
    fn finish_keeping_room(&mut self) -> ArrayRef {
        let rows = self.len().min(MAX_KEPT_ROWS);
        let array = self.finish();
        *self = BooleanBuilder::with_capacity(rows);
        Arc::new(array)
    }
}
