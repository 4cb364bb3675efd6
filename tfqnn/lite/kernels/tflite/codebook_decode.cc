// TfqnnCodebookDecode: a constant kernel stored as bit-packed indices into a
// float codebook, decoded once when the model is prepared (docs/lite_ops.md).
// Its output then feeds a builtin FULLY_CONNECTED, CONV_2D or
// DEPTHWISE_CONV_2D as their (constant) weights.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "../core/core.h"
#include "abi.h"
#include "ops.h"
#include "validation.h"

namespace tfqnn {
namespace tflite {
namespace {

using core::kMaxCodes;
using core::kMaxIndexBits;

class CodebookDecode : public Op {
 protected:
  std::string do_init(const uint8_t* data, size_t size) override {
    TFQNN_TRY(options_.parse(data, size, {"bits"}));
    return options_.get_int("bits", 1, kMaxIndexBits, &bits_, true);
  }

  // The delegate's path: decoded here, once, into the delegate's store, and
  // the output made a constant tensor, so that the builtin op (and XNNPACK,
  // which the interpreter applies after tfqnn's delegate) sees constant
  // weights.
  std::string do_bind(TfLiteContext* context, const NodeTensors& node,
                      ConstantStore* store) override {
    if (store == nullptr || node.outputs.size() != 1) return "";  // prepare() reports it
    const int o = node.outputs[0];
    if (o < 0 || size_t(o) >= context->tensors_size) return "";
    bool found = false;
    std::vector<float>* buffer = store->get(context, o, &found);
    TfLiteTensor* out = &context->tensors[o];
    if (found && out->allocation_type == kTfLiteMmapRo && out->data == buffer->data()) {
      // Bound before (the interpreter redid the delegation): still decoded.
      pinned_ = buffer->data();
      return "";
    }
    std::string error = check(context, node);
    if (error.empty()) {
      buffer->assign(size_t(elements(out_dims_)), 0.0f);
      error = decode(Tensors(context, node), buffer->data());
    }
    if (!error.empty()) {
      store->drop(context, o);
      return error;
    }
    out->allocation_type = kTfLiteMmapRo;
    out->data = buffer->data();
    out->bytes = buffer->size() * sizeof(float);
    pinned_ = buffer->data();
    return "";
  }

  std::string do_prepare(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    if (pinned_ != nullptr) {
      const TfLiteTensor* out = ts.output(0);
      if (out->allocation_type != kTfLiteMmapRo || out->data != pinned_) {
        return "the runtime changed the decoded output";
      }
      return "";
    }
    TFQNN_TRY(check(context, node));
    TfLiteTensor* out = ts.output(0);
    if (out->allocation_type != kTfLitePersistentRo) {
      // Written once here, read-only afterwards: the interpreter allocates it
      // outside the arena, so no other tensor reuses its memory between
      // invokes (TFLite's DEQUANTIZE does the same with constant input).
      out->allocation_type = kTfLitePersistentRo;
      owns_output_ = true;
    }
    // A fresh shape array: ResizeTensor (re)allocates a persistent tensor.
    auto* array = static_cast<TfLiteIntArray*>(
        std::malloc(sizeof(TfLiteIntArray) + out_dims_.size() * sizeof(int)));
    if (array == nullptr) return "out of memory";
    array->size = int(out_dims_.size());
    for (size_t i = 0; i < out_dims_.size(); ++i) array->data[i] = out_dims_[i];
    if (context->ResizeTensor(context, out, array) != kTfLiteOk)
      return "cannot allocate the output";
    const int64_t count = elements(out_dims_);
    if (out->data == nullptr || out->bytes != size_t(count) * sizeof(float)) {
      return "the runtime did not allocate the output";
    }
    return decode(ts, static_cast<float*>(out->data));
  }

  void do_invoke(TfLiteContext*, const NodeTensors&) override {}  // decoded in prepare

 private:
  // Everything but the index values: counts, types, shapes, constant data.
  std::string check(TfLiteContext* context, const NodeTensors& node) {
    Tensors ts(context, node);
    if (node.inputs.size() != 2 || node.outputs.size() != 1) {
      return "expects 2 inputs and 1 output, got " + str(node.inputs.size()) + " and " +
             str(node.outputs.size());
    }
    for (int i : node.inputs) {
      if (i < 0 || size_t(i) >= context->tensors_size) return "bad input tensor index";
    }
    const int o = node.outputs[0];
    if (o < 0 || size_t(o) >= context->tensors_size) return "bad output tensor index";
    if (o == node.inputs[0] || o == node.inputs[1]) return "the output is also an input";
    TfLiteTensor* out = ts.output(0);
    const bool ours = owns_output_ && out->allocation_type == kTfLitePersistentRo;
    if (!ours &&
        (out->allocation_type == kTfLiteMmapRo || out->allocation_type == kTfLitePersistentRo)) {
      return "output tensor " + str(o) + " must not be a constant tensor";
    }
    std::vector<int> index_dims, codebook_dims;
    TFQNN_TRY(check_tensor(ts.input(0), "indices", kTfLiteUInt8, 1, &index_dims));
    TFQNN_TRY(check_constant(ts.input(0), "indices", index_dims));
    TFQNN_TRY(check_tensor(ts.input(1), "codebook", kTfLiteFloat32, 1, &codebook_dims));
    TFQNN_TRY(check_constant(ts.input(1), "codebook", codebook_dims));
    if (codebook_dims[0] > kMaxCodes) {
      return "codebook must have at most " + str(kMaxCodes) + " entries, got " +
             str(codebook_dims[0]);
    }
    codes_ = codebook_dims[0];
    // Positive dims, at most kMaxElements values; the bytes of a persistent
    // output made by an earlier prepare match its shape.
    TFQNN_TRY(check_tensor(out, "output", kTfLiteFloat32, -1, &out_dims_));
    const int64_t count = elements(out_dims_);
    const int64_t bytes = core::packed_index_bytes(count, bits_);
    if (index_dims[0] != bytes) {
      return "indices must have " + str(bytes) + " bytes for " + str(count) + " values of " +
             str(bits_) + " bits, got " + str(index_dims[0]);
    }
    return "";
  }

  std::string decode(const Tensors& ts, float* out) const {
    const int status =
        core::codebook_decode(static_cast<const uint8_t*>(ts.input(0)->data), elements(out_dims_),
                              bits_, static_cast<const float*>(ts.input(1)->data), codes_, out);
    if (status != core::kCodebookOk) {
      return "an index is out of range for a codebook of " + str(codes_) + " entries";
    }
    return "";
  }

  Options options_;
  int bits_ = 0;
  int64_t codes_ = 0;
  bool owns_output_ = false;       // the op made the output persistent (op registerer)
  const float* pinned_ = nullptr;  // the decoded output in the delegate's store
  std::vector<int> out_dims_;
};

}  // namespace

std::unique_ptr<Op> new_codebook_decode() { return std::make_unique<CodebookDecode>(); }

}  // namespace tflite
}  // namespace tfqnn
