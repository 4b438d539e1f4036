// A stand-in for tensorflow_model_server in the tests: a C++ program that
// loads deepctr-ops' op library, loads a SavedModel (tag "serve") with
// TensorFlow's C++ API, runs a signature on inputs read from a file and prints
// the outputs.
//
//   serving_client OP_LIBRARY SAVED_MODEL_DIR INPUTS_FILE [SIGNATURE]
//
// INPUTS_FILE holds one input per line: `key dtype rank dim... value...`
// (dtype int32, int64, float or double). Each output is printed as
// `key rank dim... value...`, sorted by key, values with 9 significant digits.
#include <dlfcn.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/public/session.h"

namespace {

template <typename T>
bool ReadValues(std::istringstream& in, tensorflow::Tensor* tensor) {
  auto flat = tensor->flat<T>();
  for (int64_t i = 0; i < flat.size(); ++i) {
    if (!(in >> flat(i))) return false;
  }
  return true;
}

bool ParseInput(const std::string& line, std::string* key, tensorflow::Tensor* tensor) {
  std::istringstream in(line);
  std::string dtype;
  int rank = 0;
  if (!(in >> *key >> dtype >> rank) || rank < 0) return false;
  tensorflow::TensorShape shape;
  for (int i = 0; i < rank; ++i) {
    int64_t dim = 0;
    if (!(in >> dim) || dim < 0) return false;
    shape.AddDim(dim);
  }
  if (dtype == "int32") {
    *tensor = tensorflow::Tensor(tensorflow::DT_INT32, shape);
    return ReadValues<int32_t>(in, tensor);
  }
  if (dtype == "int64") {
    *tensor = tensorflow::Tensor(tensorflow::DT_INT64, shape);
    return ReadValues<int64_t>(in, tensor);
  }
  if (dtype == "float") {
    *tensor = tensorflow::Tensor(tensorflow::DT_FLOAT, shape);
    return ReadValues<float>(in, tensor);
  }
  if (dtype == "double") {
    *tensor = tensorflow::Tensor(tensorflow::DT_DOUBLE, shape);
    return ReadValues<double>(in, tensor);
  }
  return false;
}

void PrintOutput(const std::string& key, const tensorflow::Tensor& tensor) {
  std::printf("%s %d", key.c_str(), tensor.dims());
  for (int i = 0; i < tensor.dims(); ++i) {
    std::printf(" %lld", static_cast<long long>(tensor.dim_size(i)));
  }
  for (int64_t i = 0; i < tensor.NumElements(); ++i) {
    double v = 0;
    switch (tensor.dtype()) {
      case tensorflow::DT_FLOAT: v = tensor.flat<float>()(i); break;
      case tensorflow::DT_DOUBLE: v = tensor.flat<double>()(i); break;
      case tensorflow::DT_INT32: v = tensor.flat<int32_t>()(i); break;
      case tensorflow::DT_INT64: v = static_cast<double>(tensor.flat<int64_t>()(i)); break;
      default: std::printf(" ?"); continue;
    }
    std::printf(" %.9g", v);
  }
  std::printf("\n");
}

int Fail(const std::string& message) {
  std::cerr << "serving_client: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    return Fail("usage: serving_client OP_LIBRARY SAVED_MODEL_DIR INPUTS_FILE [SIGNATURE]");
  }
  const std::string signature_name = argc == 5 ? argv[4] : "serving_default";
  // The op library registers its ops and kernels from static initializers in
  // TF's global registries when loaded, as tf.load_op_library does.
  if (dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    return Fail(std::string("cannot load the op library: ") + dlerror());
  }
  tensorflow::SavedModelBundle bundle;
  const absl::Status loaded = tensorflow::LoadSavedModel(
      tensorflow::SessionOptions(), tensorflow::RunOptions(), argv[2],
      {"serve"}, &bundle);
  if (!loaded.ok()) return Fail("cannot load the SavedModel: " + loaded.ToString());
  const auto& signatures = bundle.meta_graph_def.signature_def();
  const auto found = signatures.find(signature_name);
  if (found == signatures.end()) return Fail("no signature " + signature_name);
  const tensorflow::SignatureDef& signature = found->second;

  std::ifstream file(argv[3]);
  if (!file) return Fail(std::string("cannot read ") + argv[3]);
  std::vector<std::pair<std::string, tensorflow::Tensor>> feeds;
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty()) continue;
    std::string key;
    tensorflow::Tensor tensor;
    if (!ParseInput(line, &key, &tensor)) return Fail("bad input line: " + line.substr(0, 80));
    const auto input = signature.inputs().find(key);
    if (input == signature.inputs().end()) return Fail("the signature has no input " + key);
    feeds.emplace_back(input->second.name(), tensor);
  }
  const std::map<std::string, tensorflow::TensorInfo> outputs(signature.outputs().begin(),
                                                             signature.outputs().end());
  std::vector<std::string> fetches;
  for (const auto& [key, info] : outputs) fetches.push_back(info.name());
  std::vector<tensorflow::Tensor> results;
  const absl::Status ran = bundle.session->Run(feeds, fetches, {}, &results);
  if (!ran.ok()) return Fail("run failed: " + ran.ToString());
  size_t i = 0;
  for (const auto& [key, info] : outputs) PrintOutput(key, results[i++]);
  return 0;
}
