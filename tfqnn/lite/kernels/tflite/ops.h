// tfqnn's custom ops as TFLite kernels, one file per op (quantize.cc,
// dequantize.cc, bdense.cc, bconv2d.cc, bmaxpool2d.cc,
// codebook_decode.cc) as an Op: option
// parsing (init), validation and precomputation (prepare) and the calls into
// the core (invoke); validation.h holds the checks they share. Used both by
// the op registerer and by the delegate (registration.cc). Contract:
// docs/lite_ops.md.
#ifndef TFQNN_LITE_KERNELS_TFLITE_OPS_H_
#define TFQNN_LITE_KERNELS_TFLITE_OPS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "abi.h"

namespace tfqnn {
namespace tflite {

// The tensors of one node: indices into context->tensors.
struct NodeTensors {
  std::vector<int> inputs;
  std::vector<int> outputs;
};

// Float constants that an op computes once, when the delegate claims its
// node (the decoded weights of TfqnnCodebookDecode). The delegate owns them,
// so they outlive the delegate kernels, which the interpreter frees and
// rebuilds when it undoes and redoes a delegation; the interpreter reads
// them as read-only model data (kTfLiteMmapRo).
class ConstantStore {
 public:
  // The buffer of (context, tensor): `*found` tells whether it existed
  // already (with `count` floats); a new one is empty.
  std::vector<float>* get(const void* context, int tensor, bool* found);
  // Forgets (context, tensor), e.g. after its computation failed.
  void drop(const void* context, int tensor);

 private:
  std::mutex mutex_;
  std::map<std::pair<const void*, int>, std::unique_ptr<std::vector<float>>> buffers_;
};

class Op {
 public:
  virtual ~Op() = default;
  // Parses the op's custom options. Never fails: an error is kept and
  // reported by prepare().
  void init(const std::string& name, const uint8_t* options, size_t size);
  // Validates options, tensor types and shapes, resizes the outputs and
  // precomputes what depends on the constant weights. Reports through
  // context->ReportError and returns kTfLiteError on any violation.
  TfLiteStatus prepare(TfLiteContext* context, const NodeTensors& node);
  // Runs the op; only after a successful prepare().
  TfLiteStatus invoke(TfLiteContext* context, const NodeTensors& node);
  // Called by the delegate when it claims the node, before any prepare():
  // an op whose output depends on constants only may compute it now into
  // `store` and make it a constant tensor. An error is reported by prepare().
  void bind(TfLiteContext* context, const NodeTensors& node, ConstantStore* store);
  const std::string& name() const { return name_; }
  void set_num_threads(int n) { num_threads_ = n; }
  // The threads the op may use: set_num_threads()'s, else the interpreter's.
  int threads(const TfLiteContext* context) const;

 protected:
  // The op's own phases: do_init and do_prepare return "" or the error,
  // do_invoke runs the core; an exception is reported as an error.
  virtual std::string do_init(const uint8_t* options, size_t size) = 0;
  virtual std::string do_prepare(TfLiteContext* context, const NodeTensors& node) = 0;
  virtual void do_invoke(TfLiteContext* context, const NodeTensors& node) = 0;
  virtual std::string do_bind(TfLiteContext*, const NodeTensors&, ConstantStore*) { return ""; }

 private:
  std::string name_;
  std::string init_error_;  // set when the options could not be parsed
  bool prepared_ = false;
  int num_threads_ = 0;  // 0: the interpreter's recommended_num_threads
};

// The op named `name` (one of kOpNames) built from its custom options. Never
// returns null for a known name: an options error is kept and reported by
// prepare(). Returns null for an unknown name.
std::unique_ptr<Op> create_op(const std::string& name, const uint8_t* options, size_t size);

bool is_tfqnn_op(const char* custom_name);
extern const char* const kOpNames[];
extern const int kNumOps;

// The ops, uninitialised: one per op file, listed in ops.cc beside its name.
std::unique_ptr<Op> new_quantize();
std::unique_ptr<Op> new_dequantize();
std::unique_ptr<Op> new_bdense();
std::unique_ptr<Op> new_bconv2d();
std::unique_ptr<Op> new_bmaxpool2d();
std::unique_ptr<Op> new_codebook_decode();

}  // namespace tflite
}  // namespace tfqnn

#endif  // TFQNN_LITE_KERNELS_TFLITE_OPS_H_
