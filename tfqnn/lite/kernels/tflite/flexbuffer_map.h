// A read-only, bounds-checked reader for the one FlexBuffer shape that TFLite
// custom options take here: a map from keys to scalars (int, uint, bool,
// float). Anything malformed (offsets out of the buffer, bad widths, a root
// that is not a map) makes parse() return false with a message; lookups never
// read outside the buffer. Format: google/flatbuffers docs "FlexBuffers".
#ifndef TFQNN_LITE_KERNELS_TFLITE_FLEXBUFFER_MAP_H_
#define TFQNN_LITE_KERNELS_TFLITE_FLEXBUFFER_MAP_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace tfqnn {
namespace tflite {

class FlexbufferMap {
 public:
  // Parses `size` bytes at `data` (may be null when size is 0: an empty map).
  bool parse(const uint8_t* data, size_t size, std::string* error);

  bool has(const std::string& key) const;
  // Value of an integer or bool key; false if absent or of another type.
  bool get_int(const std::string& key, int64_t* value) const;
  // Value of a float key (ints are accepted too); false if absent.
  bool get_float(const std::string& key, double* value) const;
  // Keys in the map, for rejecting unknown options.
  const std::map<std::string, int>& keys() const { return types_; }

 private:
  std::map<std::string, int64_t> ints_;
  std::map<std::string, double> floats_;
  std::map<std::string, int> types_;  // key -> FlexBuffer type
};

}  // namespace tflite
}  // namespace tfqnn

#endif  // TFQNN_LITE_KERNELS_TFLITE_FLEXBUFFER_MAP_H_
