/**
 * The most bytes one write(2) to a buffered (page cache) file is given; larger buffers go in
 * slices of this. Measured on the bench VM (Linux 6.18, ext4, 2 cores), 16 MiB into a new file
 * with the memory freed a few seconds before: one call took 100-340 ms, calls of 2 or 4 MiB
 * 150-280 ms, calls of 256 KiB or 1 MiB 15-90 ms (`dd bs=16M` against `bs=1M` the same way).
 * Likely (not proven): a write that covers whole 2 MiB ranges of the file is given 2 MiB pages of
 * the page cache, and on this VM fresh large pages cost far more than small ones. The fetch of a
 * WAL segment for recovery was bound by that write. A slice costs a syscall, nothing more, where it does not help.
 */
export const WRITE_MAX = 1024 * 1024;
