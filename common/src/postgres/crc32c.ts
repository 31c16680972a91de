/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as PostgreSQL's pg_crc32c computes it for
 * pg_control and WAL records. Node 20's zlib has crc32 but not the Castagnoli variant; the inputs
 * here are small (pg_control's first 512 bytes), so a byte-wise table is fast enough.
 */
const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** Continues a CRC-32C over more bytes: start with crc32cUpdate(0, ...), chain the results. */
export function crc32cUpdate(crc: number, bytes: Uint8Array): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC32C_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** The CRC-32C of some bytes, as an unsigned 32-bit number. */
export function crc32c(bytes: Uint8Array): number {
  return crc32cUpdate(0, bytes);
}
