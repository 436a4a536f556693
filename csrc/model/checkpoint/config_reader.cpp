// FieldReader: typed config fields with transformers' defaults and errors that name the field.
#include "model/checkpoint/config_reader.h"

#include <cmath>

namespace llama4::checkpoint {

static const json kNull;

const json& FieldReader::raw(const std::string& key) const {
  if (d_.contains(key)) return d_.at(key);
  if (defaults_.contains(key)) return defaults_.at(key);
  return kNull;
}

int64_t FieldReader::integer(const std::string& key, std::optional<int64_t> minimum, const json* value) const {
  const json& v = value ? *value : raw(key);
  int64_t out = 0;
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(INT64_MAX)) throw fail(key, "integer " + v.dump() + " is too large");
    out = int64_t(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    out = v.get<int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) && std::trunc(v.get<double>()) == v.get<double>() &&
             std::fabs(v.get<double>()) < 9.2e18) {
    out = int64_t(v.get<double>());  // a JSON writer may emit 8192.0
  } else {
    throw fail(key, "expected an integer, got " + py_repr(v));
  }
  if (minimum && out < *minimum)
    throw fail(key, "must be >= " + std::to_string(*minimum) + ", got " + std::to_string(out));
  return out;
}

int64_t FieldReader::size(const std::string& key, int64_t maximum, const json* value) const {
  const int64_t v = integer(key, 1, value);
  if (v > maximum)
    throw fail(key, "must be <= " + std::to_string(maximum) + ", got " + std::to_string(v) +
                        " (the engine's bound, far above any Llama 4 checkpoint)");
  return v;
}

double FieldReader::number(const std::string& key, bool positive, const json* value) const {
  const json& v = value ? *value : raw(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    throw fail(key, "expected a finite number, got " + py_repr(v));
  const double x = v.get<double>();
  if (positive && x <= 0) throw fail(key, "must be > 0, got " + py_repr(v));
  if (!positive && x < 0) throw fail(key, "must be >= 0, got " + py_repr(v));
  return x;
}

bool FieldReader::boolean(const std::string& key) const {
  const json& v = raw(key);
  if (!v.is_boolean()) throw fail(key, "expected true/false, got " + py_repr(v));
  return v.get<bool>();
}

IntOrList FieldReader::token_ids(const std::string& key) const {
  const json& v = raw(key);
  IntOrList out;
  if (v.is_null()) return out;
  if (is_int(v)) {
    out.values.push_back(integer(key, std::nullopt, &v));
    return out;
  }
  if (v.is_array() && !v.empty()) {
    bool ok = true;
    for (const json& x : v) ok = ok && is_int(x);
    if (ok) {
      out.is_list = true;
      for (const json& x : v) out.values.push_back(integer(key, std::nullopt, &x));
      return out;
    }
  }
  throw fail(key, "expected null, an integer or a list of integers, got " + py_repr(v));
}

json to_json(const IntOrList& v) {
  if (v.is_list) return json(v.values);
  if (v.values.empty()) return json();
  return json(v.values[0]);
}

}  // namespace llama4::checkpoint
