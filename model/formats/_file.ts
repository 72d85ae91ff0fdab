// Reading model files with bounded memory: a device (/dev/zero) or a pipe would stream forever,
// and a header that implies a size the file does not have should fail before the rest is read.

/**
 * Reads the file at `path`, a `what` (for messages): stat first (a regular file is required),
 * then the first `headerBytes`, from which `check` computes the most bytes the file may hold
 * (throwing a named error for anything wrong), then the rest, never more than the size stat
 * gave. Every error names the path.
 */
export async function readBoundedFile(
  path: string,
  what: string,
  check: (header: Uint8Array, size: number) => number,
  headerBytes: number,
): Promise<Uint8Array> {
  const cannot = (error: unknown) =>
    new Error(`${path}: cannot read ${what} (${error instanceof Error ? error.message : error})`);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    throw cannot(error);
  }
  if (!info.isFile) {
    throw new RangeError(`${path}: expected a regular file (a ${what}), got ${kindOf(info)}`);
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    throw cannot(error);
  }
  try {
    const size = (await file.stat()).size;
    const header = await readExactly(file, Math.min(headerBytes, size), path);
    const limit = check(header, size);
    if (size > limit) {
      throw new RangeError(`${path}: ${size} bytes is more than a ${what} can hold (${limit})`);
    }
    const bytes = new Uint8Array(size);
    bytes.set(header);
    bytes.set(await readExactly(file, size - header.length, path), header.length);
    return bytes;
  } finally {
    file.close();
  }
}

async function readExactly(file: Deno.FsFile, length: number, path: string): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let at = 0;
  while (at < length) {
    const n = await file.read(out.subarray(at));
    if (n === null) {
      throw new RangeError(`${path}: the file shrank while being read (${at} of ${length} bytes)`);
    }
    at += n;
  }
  return out;
}

function kindOf(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isFifo) return "a pipe (FIFO)";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}
