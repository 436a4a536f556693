// Exception types whose messages are built from parts.
#include "llama4/error.h"

namespace llama4 {

static std::string config_error_message(const std::string& field, const std::string& message,
                                        const std::string& file) {
  std::string out = file.empty() ? "" : file + ": ";
  if (!field.empty()) out += "config field '" + field + "': ";
  return out + message;
}

ConfigError::ConfigError(std::string field, const std::string& message, std::string file)
    : ValueError(config_error_message(field, message, file)), field_(std::move(field)), file_(std::move(file)) {}

}  // namespace llama4
