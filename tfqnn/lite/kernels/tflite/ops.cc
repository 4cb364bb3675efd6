// The op table (each name with its constructor) and the phases every Op
// shares: errors caught and reported with the op's name, invoke only after a
// successful prepare.
#include "ops.h"

#include <cstring>
#include <exception>

namespace tfqnn {
namespace tflite {

const char* const kOpNames[] = {"TfqnnQuantize", "TfqnnDequantize", "TfqnnBdense",
                                "TfqnnBconv2d",  "TfqnnBMaxPool2d", "TfqnnCodebookDecode"};
const int kNumOps = sizeof(kOpNames) / sizeof(kOpNames[0]);

namespace {

// kOpNames[i] is built by kNewOps[i].
std::unique_ptr<Op> (*const kNewOps[])() = {new_quantize, new_dequantize, new_bdense,
                                            new_bconv2d,  new_bmaxpool2d, new_codebook_decode};
static_assert(sizeof(kNewOps) / sizeof(kNewOps[0]) == sizeof(kOpNames) / sizeof(kOpNames[0]),
              "one constructor per op name");

}  // namespace

bool is_tfqnn_op(const char* custom_name) {
  if (custom_name == nullptr) return false;
  for (int i = 0; i < kNumOps; ++i) {
    if (std::strcmp(custom_name, kOpNames[i]) == 0) return true;
  }
  return false;
}

void Op::init(const std::string& name, const uint8_t* options, size_t size) {
  name_ = name;
  try {
    init_error_ = do_init(options, size);
  } catch (const std::exception& e) {
    init_error_ = std::string("cannot read options: ") + e.what();
  }
}

int Op::threads(const TfLiteContext* context) const {
  if (num_threads_ > 0) return num_threads_;
  return context->recommended_num_threads > 0 ? context->recommended_num_threads : 1;
}

TfLiteStatus Op::prepare(TfLiteContext* context, const NodeTensors& node) {
  prepared_ = false;
  std::string error = init_error_;
  if (error.empty()) {
    try {
      error = do_prepare(context, node);
    } catch (const std::exception& e) {
      error = std::string("failed: ") + e.what();
    }
  }
  if (!error.empty()) {
    context->ReportError(context, "%s: %s", name_.c_str(), error.c_str());
    return kTfLiteError;
  }
  prepared_ = true;
  return kTfLiteOk;
}

void Op::bind(TfLiteContext* context, const NodeTensors& node, ConstantStore* store) {
  if (!init_error_.empty()) return;
  try {
    init_error_ = do_bind(context, node, store);
  } catch (const std::exception& e) {
    init_error_ = std::string("failed: ") + e.what();
  }
}

std::vector<float>* ConstantStore::get(const void* context, int tensor, bool* found) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = buffers_[{context, tensor}];
  *found = slot != nullptr;
  if (!slot) slot = std::make_unique<std::vector<float>>();
  return slot.get();
}

void ConstantStore::drop(const void* context, int tensor) {
  std::lock_guard<std::mutex> lock(mutex_);
  buffers_.erase({context, tensor});
}

TfLiteStatus Op::invoke(TfLiteContext* context, const NodeTensors& node) {
  if (!prepared_) {
    context->ReportError(context, "%s: invoked before a successful prepare", name_.c_str());
    return kTfLiteError;
  }
  try {
    do_invoke(context, node);
  } catch (const std::exception& e) {
    context->ReportError(context, "%s: failed: %s", name_.c_str(), e.what());
    return kTfLiteError;
  }
  return kTfLiteOk;
}

std::unique_ptr<Op> create_op(const std::string& name, const uint8_t* options, size_t size) {
  for (int i = 0; i < kNumOps; ++i) {
    if (name == kOpNames[i]) {
      std::unique_ptr<Op> op = kNewOps[i]();
      op->init(name, options, size);
      return op;
    }
  }
  return nullptr;
}

}  // namespace tflite
}  // namespace tfqnn
