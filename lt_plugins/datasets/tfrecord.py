"""A small TFRecord + ``tf.train.Example`` reader / writer, without TensorFlow.

TFRecord framing (TensorFlow ``record_writer.cc``), per record::

    uint64 length (little endian)
    uint32 masked_crc32c(length bytes)
    bytes  data[length]
    uint32 masked_crc32c(data)

with ``masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8`` (mod 2**32) and CRC-32C (Castagnoli,
reflected polynomial ``0x82f63b78``). ``data`` is a serialised ``tf.train.Example``::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }   # entries: key = 1, value = 2
    Feature  { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                       Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed]; }   # packed or not: both are read
    Int64List { repeated int64 value = 1 [packed]; }

Only these messages are decoded (what YouTube-8M's video-level records use: ``id``,
``labels``, ``mean_rgb``, ``mean_audio``); ``SequenceExample`` (frame-level) is not supported.
The CRC is computed in pure Python (table driven, ~1 MB/s): ``verify_data_crc=False`` skips
the data checksum for large files (the length checksum is always verified).
"""
import struct
from typing import Dict, Iterator, List, Sequence, Tuple, Union

import numpy as np

_POLY = 0x82F63B78
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)
del _i, _c

FeatureValue = Union[List[bytes], np.ndarray]


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` (``crc32c(b'123456789') == 0xe3069283``)."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class TFRecordError(ValueError):
    """A corrupt or truncated TFRecord file, or an undecodable tf.Example."""


# ----------------------------------------------------------------------------- framing
def iter_tfrecord(path: str, verify_data_crc: bool = True) -> Iterator[bytes]:
    """Yield the payload of every record of a TFRecord file (uncompressed)."""
    with open(path, 'rb') as f:
        index = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise TFRecordError(f'{path}: record {index} is truncated (header of '
                                    f'{len(header)} of 12 bytes).')
            length_bytes = header[:8]
            (length, ) = struct.unpack('<Q', length_bytes)
            (length_crc, ) = struct.unpack('<I', header[8:])
            if masked_crc32c(length_bytes) != length_crc:
                raise TFRecordError(f'{path}: record {index} has a corrupt length field (CRC '
                                    'mismatch); the file is damaged or not a TFRecord (a '
                                    'GZIP-compressed TFRecord must be decompressed first).')
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise TFRecordError(f'{path}: record {index} is truncated ({len(data)} of '
                                    f'{length} data bytes).')
            if verify_data_crc and masked_crc32c(data) != struct.unpack('<I', footer)[0]:
                raise TFRecordError(f'{path}: record {index} has corrupt data (CRC '
                                    'mismatch).')
            yield data
            index += 1


def write_tfrecord(path: str, records: Sequence[bytes]) -> None:
    """Write ``records`` (bytes payloads) as a TFRecord file."""
    with open(path, 'wb') as f:
        for data in records:
            length = struct.pack('<Q', len(data))
            f.write(length)
            f.write(struct.pack('<I', masked_crc32c(length)))
            f.write(data)
            f.write(struct.pack('<I', masked_crc32c(data)))


# --------------------------------------------------------------------- protobuf wire
def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TFRecordError('truncated varint')
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise TFRecordError('varint longer than 10 bytes')


def _fields(buf: bytes) -> Iterator[Tuple[int, int, Union[int, bytes]]]:
    """``(field number, wire type, value)``; length-delimited values as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise TFRecordError('truncated 64-bit field')
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise TFRecordError('truncated length-delimited field')
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            if pos + 4 > len(buf):
                raise TFRecordError('truncated 32-bit field')
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise TFRecordError(f'unsupported wire type {wire}')
        yield field, wire, value


def _decode_feature(buf: bytes) -> FeatureValue:
    for kind, _, payload in _fields(buf):
        if kind == 1:                                   # BytesList
            return [bytes(v) for f, w, v in _fields(payload) if f == 1 and w == 2]
        if kind == 2:                                   # FloatList
            parts = []
            for f, w, v in _fields(payload):
                if f == 1:
                    parts.append(np.frombuffer(v, dtype='<f4'))   # packed (2) or single (5)
            return (np.concatenate(parts) if parts else np.zeros(0, '<f4')).astype(np.float32)
        if kind == 3:                                   # Int64List
            values = []
            for f, w, v in _fields(payload):
                if f != 1:
                    continue
                if w == 0:
                    values.append(v)
                else:                                   # packed varints
                    pos = 0
                    while pos < len(v):
                        item, pos = _varint(v, pos)
                        values.append(item)
            arr = np.array(values, dtype=np.uint64).view(np.int64)   # two's complement
            return arr
    return np.zeros(0, np.float32)                      # an empty Feature


def parse_example(data: bytes) -> Dict[str, FeatureValue]:
    """Decode a serialised ``tf.train.Example`` into ``{name: bytes list | ndarray}``."""
    out: Dict[str, FeatureValue] = {}
    for field, wire, features in _fields(data):
        if field != 1 or wire != 2:
            continue
        for entry_field, entry_wire, entry in _fields(features):
            if entry_field != 1 or entry_wire != 2:
                continue
            name, value = None, b''
            for f, w, v in _fields(entry):
                if f == 1 and w == 2:
                    name = bytes(v).decode('utf-8')
                elif f == 2 and w == 2:
                    value = v
            if name is not None:
                out[name] = _decode_feature(value)
    return out


# -------------------------------------------------------------------------- encoding
def _enc_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _enc_field(field: int, payload: bytes) -> bytes:
    return _enc_varint(field << 3 | 2) + _enc_varint(len(payload)) + payload


def encode_example(features: Dict[str, Union[Sequence[bytes], np.ndarray, Sequence[float],
                                             Sequence[int]]]) -> bytes:
    """Serialise ``{name: value}`` as a ``tf.train.Example``: bytes / str lists become
    BytesList, integer arrays Int64List (packed), anything else FloatList (packed)."""
    entries = b''
    for name, value in features.items():
        if isinstance(value, (bytes, str)):
            value = [value]
        if len(value) and isinstance(value[0], (bytes, str)):
            items = b''.join(_enc_field(1, v.encode() if isinstance(v, str) else v)
                             for v in value)
            feature = _enc_field(1, items)
        else:
            arr = np.asarray(value)
            if np.issubdtype(arr.dtype, np.integer):
                packed = b''.join(_enc_varint(int(v)) for v in arr.reshape(-1))
                feature = _enc_field(3, _enc_field(1, packed))
            else:
                packed = arr.astype('<f4').reshape(-1).tobytes()
                feature = _enc_field(2, _enc_field(1, packed))
        entry = _enc_field(1, name.encode('utf-8')) + _enc_field(2, feature)
        entries += _enc_field(1, entry)
    return _enc_field(1, entries)
