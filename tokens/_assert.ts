// Boundary checks shared by every public function: each returns the checked
// value and says what was expected (TypeError: wrong type; RangeError: wrong value).

export function abytes(value: unknown, length: number | undefined, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`"${name}" expected Uint8Array, got ${value === null ? 'null' : typeof value}`);
  }
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`"${name}" expected Uint8Array of length ${length}, got length=${value.length}`);
  }
  return value;
}

export function aint(value: unknown, min: number, max: number, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`"${name}" expected integer, got ${typeof value === 'number' ? value : typeof value}`);
  }
  if (value < min || value > max) {
    throw new RangeError(`"${name}" expected integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

export function astring(value: unknown, maxBytes: number, name: string): string {
  if (typeof value !== 'string') throw new TypeError(`"${name}" expected string, got ${typeof value}`);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes === 0 || bytes > maxBytes || value.includes('\0')) {
    throw new RangeError(`"${name}" expected 1..${maxBytes} UTF-8 bytes without NUL, got ${bytes} bytes`);
  }
  return value;
}

export function fromHex(hex: unknown, length: number, name: string): Uint8Array {
  if (typeof hex !== 'string') throw new TypeError(`"${name}" expected hex string, got ${typeof hex}`);
  if (hex.length !== 2 * length || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new RangeError(`"${name}" expected ${2 * length} hex digits, got "${hex.slice(0, 80)}"`);
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}
