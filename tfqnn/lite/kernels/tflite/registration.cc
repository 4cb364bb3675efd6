// The two ways the interpreter finds tfqnn's kernels:
//  * the external delegate (default; needs only ai-edge-litert): the
//    interpreter loads this library with load_delegate(), Prepare claims every
//    Tfqnn* custom node and runs each partition of them as one kernel;
//  * the op registerer (tf.lite / InterpreterWithCustomOps): TfqnnRegisterOps
//    adds one TfLiteRegistration per op to a tflite::MutableOpResolver.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "../core/core.h"
#include "../macros.h"
#include "abi.h"
#include "ops.h"

namespace tfqnn {
namespace tflite {
namespace {

NodeTensors tensors_of(const TfLiteNode* node) {
  NodeTensors t;
  if (node->inputs) t.inputs.assign(node->inputs->data, node->inputs->data + node->inputs->size);
  if (node->outputs)
    t.outputs.assign(node->outputs->data, node->outputs->data + node->outputs->size);
  return t;
}

// ---- op registerer ---------------------------------------------------------

template <int kIndex>
void* registered_init(TfLiteContext*, const char* buffer, size_t length) {
  return create_op(kOpNames[kIndex], reinterpret_cast<const uint8_t*>(buffer), length).release();
}

void registered_free(TfLiteContext*, void* op) { delete static_cast<Op*>(op); }

TfLiteStatus registered_prepare(TfLiteContext* context, TfLiteNode* node) {
  auto* op = static_cast<Op*>(node->user_data);
  if (op == nullptr) return kTfLiteError;
  return op->prepare(context, tensors_of(node));
}

TfLiteStatus registered_invoke(TfLiteContext* context, TfLiteNode* node) {
  auto* op = static_cast<Op*>(node->user_data);
  if (op == nullptr) return kTfLiteError;
  return op->invoke(context, tensors_of(node));
}

// AddCustom copies the registration with the runtime's sizeof, which may grow:
// the zero tail keeps that copy inside our memory.
struct PaddedRegistration {
  TfLiteRegistration registration;
  unsigned char zero_tail[128];
};

template <int kIndex>
PaddedRegistration* registration() {
  static PaddedRegistration r = [] {
    PaddedRegistration p;
    std::memset(&p, 0, sizeof(p));
    p.registration.init = registered_init<kIndex>;
    p.registration.free = registered_free;
    p.registration.prepare = registered_prepare;
    p.registration.invoke = registered_invoke;
    p.registration.builtin_code = kBuiltinCustom;
    p.registration.custom_name = kOpNames[kIndex];
    p.registration.version = 1;
    return p;
  }();
  return &r;
}

const TfLiteRegistration* registration_of(int index) {
  switch (index) {
    case 0: return &registration<0>()->registration;
    case 1: return &registration<1>()->registration;
    case 2: return &registration<2>()->registration;
    case 3: return &registration<3>()->registration;
    case 4: return &registration<4>()->registration;
    case 5: return &registration<5>()->registration;
  }
  return nullptr;
}
// registration_of() has one case per entry of kOpNames (6 ops).

// ---- delegate --------------------------------------------------------------

struct DelegateOptions {
  int num_threads = 0;  // 0: the interpreter's num_threads
  ConstantStore constants;
};

// One delegate kernel: a partition of consecutive tfqnn nodes.
struct Partition {
  std::vector<std::unique_ptr<Op>> ops;
  std::vector<NodeTensors> nodes;
  std::vector<int> internal_tensors;  // produced and consumed inside
  std::string error;
};

void* partition_init(TfLiteContext* context, const char* buffer, size_t) {
  auto* partition = new Partition;
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  auto* options = static_cast<DelegateOptions*>(params->delegate->data_);
  std::set<int> produced;
  for (int i = 0; i < params->nodes_to_replace->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, params->nodes_to_replace->data[i], &node, &reg) !=
        kTfLiteOk) {
      partition->error = "cannot read a delegated node";
      break;
    }
    auto op =
        create_op(reg->custom_name, static_cast<const uint8_t*>(node->custom_initial_data),
                  node->custom_initial_data_size > 0 ? size_t(node->custom_initial_data_size) : 0);
    if (!op) {
      partition->error = std::string("unknown op ") + reg->custom_name;
      break;
    }
    op->set_num_threads(options->num_threads);
    partition->nodes.push_back(tensors_of(node));
    op->bind(context, partition->nodes.back(), &options->constants);
    partition->ops.push_back(std::move(op));
    for (int t : partition->nodes.back().outputs) produced.insert(t);
  }
  std::set<int> outputs(params->output_tensors->data,
                        params->output_tensors->data + params->output_tensors->size);
  for (int t : produced) {
    if (!outputs.count(t)) partition->internal_tensors.push_back(t);
  }
  return partition;
}

void partition_free(TfLiteContext*, void* buffer) { delete static_cast<Partition*>(buffer); }

TfLiteStatus partition_prepare(TfLiteContext* context, TfLiteNode* node) {
  auto* partition = static_cast<Partition*>(node->user_data);
  if (partition == nullptr) return kTfLiteError;
  if (!partition->error.empty()) {
    context->ReportError(context, "tfqnn delegate: %s", partition->error.c_str());
    return kTfLiteError;
  }
  // Tensors that live only inside the partition are nobody's input or output
  // any more: list them as temporaries so that the interpreter allocates them.
  const auto& internal = partition->internal_tensors;
  auto* temporaries = static_cast<TfLiteIntArray*>(
      std::malloc(sizeof(TfLiteIntArray) + internal.size() * sizeof(int)));
  if (temporaries == nullptr) return kTfLiteError;
  temporaries->size = int(internal.size());
  for (size_t i = 0; i < internal.size(); ++i) temporaries->data[i] = internal[i];
  std::free(node->temporaries);  // TfLiteIntArrayFree is free()
  node->temporaries = temporaries;
  for (size_t i = 0; i < partition->ops.size(); ++i) {
    if (partition->ops[i]->prepare(context, partition->nodes[i]) != kTfLiteOk) {
      return kTfLiteError;
    }
  }
  return kTfLiteOk;
}

TfLiteStatus partition_invoke(TfLiteContext* context, TfLiteNode* node) {
  auto* partition = static_cast<Partition*>(node->user_data);
  if (partition == nullptr) return kTfLiteError;
  if (!partition->ops.empty()) core::wake_threads(partition->ops.front()->threads(context));
  for (size_t i = 0; i < partition->ops.size(); ++i) {
    if (partition->ops[i]->invoke(context, partition->nodes[i]) != kTfLiteOk) {
      core::rest_threads();
      return kTfLiteError;
    }
  }
  core::rest_threads();  // the interpreter's next ops (XNNPACK's) need the cores
  return kTfLiteOk;
}

TfLiteStatus delegate_prepare(TfLiteContext* context, TfLiteDelegate* delegate) {
  TfLiteIntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk) return kTfLiteError;
  std::vector<int> claimed;
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) != kTfLiteOk) {
      return kTfLiteError;
    }
    if (reg->builtin_code == kBuiltinCustom && is_tfqnn_op(reg->custom_name)) {
      claimed.push_back(plan->data[i]);
    }
  }
  if (claimed.empty()) return kTfLiteOk;
  auto* nodes = static_cast<TfLiteIntArray*>(
      std::malloc(sizeof(TfLiteIntArray) + claimed.size() * sizeof(int)));
  if (nodes == nullptr) return kTfLiteError;
  nodes->size = int(claimed.size());
  for (size_t i = 0; i < claimed.size(); ++i) nodes->data[i] = claimed[i];
  TfLiteRegistration kernel;
  std::memset(&kernel, 0, sizeof(kernel));
  kernel.init = partition_init;
  kernel.free = partition_free;
  kernel.prepare = partition_prepare;
  kernel.invoke = partition_invoke;
  kernel.builtin_code = 51;  // kTfLiteBuiltinDelegate
  kernel.custom_name = "TfqnnDelegate";
  kernel.version = 1;
  const TfLiteStatus status =
      context->ReplaceNodeSubsetsWithDelegateKernels(context, kernel, nodes, delegate);
  std::free(nodes);
  return status;
}

bool parse_positive_int(const char* text, int* out) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 1 || v > 1024) return false;
  *out = int(v);
  return true;
}

}  // namespace
}  // namespace tflite
}  // namespace tfqnn

using namespace tfqnn::tflite;  // NOLINT: the exported C entry points below

// Adds tfqnn's ops to a tflite::MutableOpResolver. Needs TensorFlow's
// libtensorflow_cc.so.2 in the process (`import tensorflow`), which is the
// only library that exports MutableOpResolver::AddCustom.
TFQNN_EXPORT void TfqnnRegisterOps(void* resolver) {
  using AddCustom = void (*)(void*, const char*, const TfLiteRegistration*, int);
  static const char kSymbol[] =
      "_ZN6tflite17MutableOpResolver9AddCustomEPKcPK18TfLiteRegistrationi";
  void* fn = dlsym(RTLD_DEFAULT, kSymbol);
  if (fn == nullptr) {
    void* lib = dlopen("libtensorflow_cc.so.2", RTLD_NOW | RTLD_NOLOAD);
    if (lib != nullptr) fn = dlsym(lib, kSymbol);
  }
  if (fn == nullptr || resolver == nullptr) return;
  for (int i = 0; i < kNumOps; ++i) {
    reinterpret_cast<AddCustom>(fn)(resolver, kOpNames[i], registration_of(i), 1);
  }
}

// 1 when TfqnnRegisterOps can find MutableOpResolver::AddCustom.
TFQNN_EXPORT int TfqnnCanRegisterOps() {
  static const char kSymbol[] =
      "_ZN6tflite17MutableOpResolver9AddCustomEPKcPK18TfLiteRegistrationi";
  if (dlsym(RTLD_DEFAULT, kSymbol) != nullptr) return 1;
  void* lib = dlopen("libtensorflow_cc.so.2", RTLD_NOW | RTLD_NOLOAD);
  return lib != nullptr && dlsym(lib, kSymbol) != nullptr;
}

// External delegate entry points (tflite::delegates::ExternalDelegateWrapper).
// Options: num_threads (1..1024; default: the interpreter's num_threads).
TFQNN_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values,
                                                           size_t num_options,
                                                           void (*report_error)(const char*)) {
  auto* options = new DelegateOptions;
  for (size_t i = 0; i < num_options; ++i) {
    const std::string key = keys[i] ? keys[i] : "";
    if (key == "num_threads" && values[i] && parse_positive_int(values[i], &options->num_threads)) {
      continue;
    }
    if (report_error) {
      report_error(key == "num_threads"
                       ? "tfqnn delegate: num_threads must be an integer in [1, 1024]"
                       : "tfqnn delegate: unknown option (allowed: num_threads)");
    }
    delete options;
    return nullptr;
  }
  auto* delegate = new TfLiteDelegate;
  std::memset(delegate, 0, sizeof(*delegate));
  delegate->data_ = options;
  delegate->Prepare = delegate_prepare;
  delegate->flags = kDelegateFlagsAllowDynamicTensors;
  return delegate;
}

TFQNN_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  if (delegate == nullptr) return;
  delete static_cast<DelegateOptions*>(delegate->data_);
  delete delegate;
}
