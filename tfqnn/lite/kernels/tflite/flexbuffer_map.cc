#include "flexbuffer_map.h"

#include <cstring>

namespace tfqnn {
namespace tflite {
namespace {

// FlexBuffer type codes (flexbuffers.h, Type).
enum : int {
  kNull = 0,
  kInt = 1,
  kUInt = 2,
  kFloat = 3,
  kKey = 4,
  kString = 5,
  kIndirectInt = 6,
  kIndirectUInt = 7,
  kIndirectFloat = 8,
  kMap = 9,
  kVectorKey = 14,
  kBool = 26,
};

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool in_bounds(size_t pos, size_t len) const { return pos <= size_ && len <= size_ - pos; }
  static bool valid_width(size_t w) { return w == 1 || w == 2 || w == 4 || w == 8; }

  bool read_uint(size_t pos, size_t width, uint64_t* out) const {
    if (!valid_width(width) || !in_bounds(pos, width)) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) v |= uint64_t(data_[pos + i]) << (8 * i);
    *out = v;
    return true;
  }
  bool read_int(size_t pos, size_t width, int64_t* out) const {
    uint64_t u;
    if (!read_uint(pos, width, &u)) return false;
    if (width < 8) {
      const uint64_t sign = uint64_t(1) << (8 * width - 1);
      if (u & sign) u |= ~((sign << 1) - 1);
    }
    *out = int64_t(u);
    return true;
  }
  bool read_float(size_t pos, size_t width, double* out) const {
    if (!in_bounds(pos, width)) return false;
    if (width == 4) {
      float f;
      std::memcpy(&f, data_ + pos, 4);
      *out = f;
      return true;
    }
    if (width == 8) {
      double d;
      std::memcpy(&d, data_ + pos, 8);
      *out = d;
      return true;
    }
    return false;
  }
  // An offset stored at `pos` points backwards: target = pos - offset.
  bool follow(size_t pos, size_t width, size_t* target) const {
    uint64_t off;
    if (!read_uint(pos, width, &off) || off > pos) return false;
    *target = pos - size_t(off);
    return true;
  }
  bool read_key(size_t pos, std::string* key) const {
    if (pos >= size_) return false;
    const void* end = std::memchr(data_ + pos, 0, size_ - pos);
    if (end == nullptr) return false;
    key->assign(reinterpret_cast<const char*>(data_ + pos),
                static_cast<const uint8_t*>(end) - (data_ + pos));
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

}  // namespace

bool FlexbufferMap::parse(const uint8_t* data, size_t size, std::string* error) {
  ints_.clear();
  floats_.clear();
  types_.clear();
  if (size == 0) return true;  // no options at all: every key takes its default
  if (data == nullptr || size < 3) {
    *error = "custom options are truncated";
    return false;
  }
  Reader r(data, size);
  const size_t root_width = data[size - 1];
  const int root_packed = data[size - 2];
  if (!Reader::valid_width(root_width) || size < 2 + root_width) {
    *error = "custom options: bad root width";
    return false;
  }
  if ((root_packed >> 2) != kMap) {
    *error = "custom options must be a FlexBuffer map";
    return false;
  }
  const size_t root_pos = size - 2 - root_width;
  const size_t width = size_t(1) << (root_packed & 3);  // map element width
  size_t map_pos;
  uint64_t count, keys_width;
  size_t keys_pos;
  if (!r.follow(root_pos, root_width, &map_pos) || map_pos < 3 * width ||
      !r.read_uint(map_pos - width, width, &count) ||
      !r.read_uint(map_pos - 2 * width, width, &keys_width) || !Reader::valid_width(keys_width) ||
      !r.follow(map_pos - 3 * width, width, &keys_pos)) {
    *error = "custom options: malformed map header";
    return false;
  }
  uint64_t key_count;
  if (count > size || keys_pos < keys_width ||
      !r.read_uint(keys_pos - keys_width, keys_width, &key_count) || key_count != count ||
      !r.in_bounds(map_pos, count * width + count) || !r.in_bounds(keys_pos, count * keys_width)) {
    *error = "custom options: malformed map";
    return false;
  }
  for (size_t i = 0; i < count; ++i) {
    size_t key_pos;
    std::string key;
    if (!r.follow(keys_pos + i * keys_width, keys_width, &key_pos) || !r.read_key(key_pos, &key)) {
      *error = "custom options: malformed key";
      return false;
    }
    const size_t value_pos = map_pos + i * width;
    const int packed = data[map_pos + count * width + i];
    const int type = packed >> 2;
    const size_t child_width = size_t(1) << (packed & 3);
    types_[key] = type;
    bool ok = true;
    int64_t iv;
    uint64_t uv;
    double fv;
    size_t target;
    switch (type) {
      case kInt:
        ok = r.read_int(value_pos, width, &iv);
        if (ok) ints_[key] = iv;
        break;
      case kUInt:
      case kBool:
        ok = r.read_uint(value_pos, width, &uv) && uv <= uint64_t(INT64_MAX);
        if (ok) ints_[key] = int64_t(uv);
        break;
      case kFloat:
        ok = r.read_float(value_pos, width, &fv);
        if (ok) floats_[key] = fv;
        break;
      case kIndirectInt:
        ok = r.follow(value_pos, width, &target) && r.read_int(target, child_width, &iv);
        if (ok) ints_[key] = iv;
        break;
      case kIndirectUInt:
        ok = r.follow(value_pos, width, &target) && r.read_uint(target, child_width, &uv) &&
             uv <= uint64_t(INT64_MAX);
        if (ok) ints_[key] = int64_t(uv);
        break;
      case kIndirectFloat:
        ok = r.follow(value_pos, width, &target) && r.read_float(target, child_width, &fv);
        if (ok) floats_[key] = fv;
        break;
      default: break;  // strings, vectors...: recorded in types_ only
    }
    if (!ok) {
      *error = "custom options: malformed value of '" + key + "'";
      return false;
    }
  }
  return true;
}

bool FlexbufferMap::has(const std::string& key) const { return types_.count(key) != 0; }

bool FlexbufferMap::get_int(const std::string& key, int64_t* value) const {
  auto it = ints_.find(key);
  if (it == ints_.end()) return false;
  *value = it->second;
  return true;
}

bool FlexbufferMap::get_float(const std::string& key, double* value) const {
  auto it = floats_.find(key);
  if (it != floats_.end()) {
    *value = it->second;
    return true;
  }
  auto jt = ints_.find(key);
  if (jt == ints_.end()) return false;
  *value = double(jt->second);
  return true;
}

}  // namespace tflite
}  // namespace tfqnn
