// A small FlexBuffer map writer for the fuzz driver (fuzz_ops.cc): writes a
// root map of scalars, strings and null with chosen byte widths, so that the
// generated custom options exercise every path of the glue's reader
// (tfqnn/lite/kernels/tflite/flexbuffer_map.cc): inline ints of 1..8 bytes,
// uints, bools, floats of 4 or 8 bytes, indirect scalars, strings, null.
// Written from the format description (google/flatbuffers, "FlexBuffers").
#ifndef TFQNN_TESTS_LITE_NATIVE_FLEXBUFFER_WRITER_H_
#define TFQNN_TESTS_LITE_NATIVE_FLEXBUFFER_WRITER_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace fuzz {

// FlexBuffer type codes.
enum FbType : int {
  kFbNull = 0,
  kFbInt = 1,
  kFbUInt = 2,
  kFbFloat = 3,
  kFbKey = 4,
  kFbString = 5,
  kFbIndirectInt = 6,
  kFbIndirectUInt = 7,
  kFbIndirectFloat = 8,
  kFbMap = 9,
  kFbBool = 26,
};

struct FbValue {
  int type = kFbInt;    // one of FbType (kFbKey and kFbMap are not written)
  int64_t i = 0;        // kFbInt, kFbIndirectInt; bit pattern of uints and bools
  double f = 0;         // floats
  std::string s;        // kFbString
  int child_width = 0;  // indirect scalars / strings: bytes of the child (0: minimal)

  static FbValue Int(int64_t v) {
    FbValue x;
    x.type = kFbInt;
    x.i = v;
    return x;
  }
  static FbValue UInt(uint64_t v) {
    FbValue x;
    x.type = kFbUInt;
    x.i = int64_t(v);
    return x;
  }
  static FbValue Bool(bool v) {
    FbValue x;
    x.type = kFbBool;
    x.i = v;
    return x;
  }
  static FbValue Float(double v) {
    FbValue x;
    x.type = kFbFloat;
    x.f = v;
    return x;
  }
  static FbValue String(std::string v) {
    FbValue x;
    x.type = kFbString;
    x.s = std::move(v);
    return x;
  }
  static FbValue Null() {
    FbValue x;
    x.type = kFbNull;
    return x;
  }
};

using FbEntries = std::vector<std::pair<std::string, FbValue>>;

namespace detail {

inline int log2_width(int w) { return w == 1 ? 0 : w == 2 ? 1 : w == 4 ? 2 : 3; }

inline bool fits_unsigned(uint64_t v, int w) { return w == 8 || v < (uint64_t(1) << (8 * w)); }
inline bool fits_signed(int64_t v, int w) {
  if (w == 8) return true;
  const int64_t lim = int64_t(1) << (8 * w - 1);
  return v >= -lim && v < lim;
}
inline int min_signed_width(int64_t v) {
  for (int w : {1, 2, 4})
    if (fits_signed(v, w)) return w;
  return 8;
}
inline int min_unsigned_width(uint64_t v) {
  for (int w : {1, 2, 4})
    if (fits_unsigned(v, w)) return w;
  return 8;
}
inline void put(std::vector<uint8_t>* b, uint64_t v, int w) {
  for (int k = 0; k < w; ++k) b->push_back(uint8_t(v >> (8 * k)));
}
inline void put_float(std::vector<uint8_t>* b, double v, int w) {
  if (w == 4) {
    const float f = float(v);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    put(b, u, 4);
  } else {
    uint64_t u;
    std::memcpy(&u, &v, 8);
    put(b, u, 8);
  }
}
inline void align(std::vector<uint8_t>* b, int w) {
  while (b->size() % size_t(w)) b->push_back(0);
}
inline bool is_indirect(int type) {
  return type == kFbIndirectInt || type == kFbIndirectUInt || type == kFbIndirectFloat ||
         type == kFbString;
}
inline bool float_is_exact_in_f32(double v) {
  return v != v || double(float(v)) == v;  // NaN: either width
}
inline int child_width_of(const FbValue& v) {
  if (v.child_width) return v.child_width;
  switch (v.type) {
    case kFbIndirectInt: return min_signed_width(v.i);
    case kFbIndirectUInt: return min_unsigned_width(uint64_t(v.i));
    case kFbIndirectFloat: return float_is_exact_in_f32(v.f) ? 4 : 8;
    case kFbString: return min_unsigned_width(v.s.size());
  }
  return 1;
}

// One try with the given widths: false if something does not fit.
inline bool write_with(const FbEntries& entries, int w, int kw, int rw, std::vector<uint8_t>* out) {
  std::vector<uint8_t>& b = *out;
  b.clear();
  const size_t n = entries.size();
  std::vector<size_t> key_pos(n), child_pos(n);
  for (size_t i = 0; i < n; ++i) {
    key_pos[i] = b.size();
    b.insert(b.end(), entries[i].first.begin(), entries[i].first.end());
    b.push_back(0);
  }
  for (size_t i = 0; i < n; ++i) {
    const FbValue& v = entries[i].second;
    if (!is_indirect(v.type)) continue;
    const int cw = child_width_of(v);
    align(&b, cw);
    if (v.type == kFbString) {
      if (!fits_unsigned(v.s.size(), cw)) return false;
      put(&b, v.s.size(), cw);
      child_pos[i] = b.size();
      b.insert(b.end(), v.s.begin(), v.s.end());
      b.push_back(0);
    } else if (v.type == kFbIndirectFloat) {
      if (cw != 4 && cw != 8) return false;
      child_pos[i] = b.size();
      put_float(&b, v.f, cw);
    } else {
      child_pos[i] = b.size();
      put(&b, uint64_t(v.i), cw);
    }
  }
  // The keys: a typed vector of key offsets, preceded by its length.
  align(&b, kw);
  if (!fits_unsigned(n, kw)) return false;
  put(&b, n, kw);
  const size_t keys_pos = b.size();
  for (size_t i = 0; i < n; ++i) {
    const uint64_t off = b.size() - key_pos[i];
    if (!fits_unsigned(off, kw)) return false;
    put(&b, off, kw);
  }
  // The map: keys offset, keys byte width, length, values, type bytes.
  align(&b, w);
  const uint64_t keys_off = b.size() - keys_pos;
  if (!fits_unsigned(keys_off, w) || !fits_unsigned(n, w)) return false;
  put(&b, keys_off, w);
  put(&b, uint64_t(kw), w);
  put(&b, n, w);
  const size_t map_pos = b.size();
  std::vector<uint8_t> types(n);
  for (size_t i = 0; i < n; ++i) {
    const FbValue& v = entries[i].second;
    int bits = 0;
    switch (v.type) {
      case kFbInt:
        if (!fits_signed(v.i, w)) return false;
        put(&b, uint64_t(v.i), w);
        bits = log2_width(min_signed_width(v.i));
        break;
      case kFbUInt:
      case kFbBool:
        if (!fits_unsigned(uint64_t(v.i), w)) return false;
        put(&b, uint64_t(v.i), w);
        bits = log2_width(min_unsigned_width(uint64_t(v.i)));
        break;
      case kFbFloat:
        if (w < 4) return false;
        put_float(&b, v.f, w);
        bits = log2_width(w);
        break;
      case kFbNull: put(&b, 0, w); break;
      default: {  // indirect: an offset back to the child
        const uint64_t off = b.size() - child_pos[i];
        if (!fits_unsigned(off, w)) return false;
        put(&b, off, w);
        bits = log2_width(child_width_of(v));
      }
    }
    types[i] = uint8_t((v.type << 2) | bits);
  }
  b.insert(b.end(), types.begin(), types.end());
  // The root: offset to the map, its packed type, the root's byte width.
  align(&b, rw);
  const uint64_t root_off = b.size() - map_pos;
  if (!fits_unsigned(root_off, rw)) return false;
  put(&b, root_off, rw);
  b.push_back(uint8_t((kFbMap << 2) | log2_width(w)));
  b.push_back(uint8_t(rw));
  return true;
}

}  // namespace detail

// The bytes of a FlexBuffer map of `entries` (in the given order; readers
// that binary-search keys want them sorted, tfqnn's does not). `min_width`,
// `min_keys_width`, `min_root_width` (1, 2, 4, 8) are raised until
// everything fits.
inline std::vector<uint8_t> write_map(const FbEntries& entries, int min_width = 1,
                                      int min_keys_width = 1, int min_root_width = 1) {
  std::vector<uint8_t> out;
  for (int w = min_width; w <= 8; w *= 2) {
    for (int kw = min_keys_width; kw <= 8; kw *= 2) {
      for (int rw = min_root_width; rw <= 8; rw *= 2) {
        if (detail::write_with(entries, w, kw, rw, &out)) return out;
      }
    }
  }
  out.clear();  // cannot happen: width 8 holds everything
  return out;
}

}  // namespace fuzz

#endif  // TFQNN_TESTS_LITE_NATIVE_FLEXBUFFER_WRITER_H_
