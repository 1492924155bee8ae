//! The global allocator on wasm32: `dlmalloc`, the allocator Rust's own wasm
//! targets are built around, small and fast on a linear memory that only
//! grows. Native builds keep the system allocator (musl's).

#[cfg(target_family = "wasm")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
