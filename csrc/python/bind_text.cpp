// Bindings of the C++ tokenizer and chat format (llama4/tokenizer.h, llama4/chat.h):
//   _C.Tokenizer(path) / _C.Tokenizer.from_checkpoint(path): encode, decode, decode_bytes,
//     token_bytes, special_token_id, is_special, chat(messages, ...), the special ids
//   _C.IncrementalDecoder(tok, skip_special_tokens), _C.render_chat(messages, ...)
//   _C.image_token_ids / expand_image_tokens / num_patches_per_tile, _C.utf8_replace_invalid
// Python messages (chat.py's dicts) become chat::Message here, with chat.py's error messages for
// the Python-shaped mistakes (not a dict, content of the wrong type); dict/list tool results and
// tool-call arguments are written with Python's json.dumps(ensure_ascii=False), as chat.py does.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "llama4/chat.h"
#include "llama4/error.h"
#include "llama4/tokenizer.h"
#include "python/bindings.h"
#include "text/long_input.h"
#include "text/pretokenizer.h"

namespace py = pybind11;

namespace llama4::python {
namespace {

std::string utf8_of(const py::handle& text) {
  if (py::isinstance<py::bytes>(text)) return text.cast<std::string>();
  if (!py::isinstance<py::str>(text))
    throw TypeError(detail::concat("text must be str or bytes, got ", py::str(text.get_type().attr("__name__")).cast<std::string>()));
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
  if (data != nullptr) return std::string(data, size_t(size));
  PyErr_Clear();
  // Surrogates (no UTF-8 form): what tiktoken's encode does, so the ids stay tiktoken's. A
  // high+low pair becomes its character, a lone surrogate U+FFFD.
  const py::object fixed =
      text.attr("encode")("utf-16", "surrogatepass").attr("decode")("utf-16", "replace");
  data = PyUnicode_AsUTF8AndSize(fixed.ptr(), &size);
  if (data == nullptr) throw py::error_already_set();
  return std::string(data, size_t(size));
}

AllowedSpecial allowed_of(const py::object& a) {
  if (py::isinstance<py::str>(a)) {
    const auto s = a.cast<std::string>();
    if (s == "none") return AllowedSpecial::none();
    if (s == "all") return AllowedSpecial::all();
  } else if (py::isinstance<py::set>(a) || py::isinstance<py::frozenset>(a) || py::isinstance<py::list>(a) ||
             py::isinstance<py::tuple>(a)) {
    std::vector<std::string> names;
    for (const py::handle& n : a) names.push_back(py::str(n).cast<std::string>());
    return AllowedSpecial(std::move(names));
  }
  throw ValueError("allowed_special must be 'all', 'none' or a set of names, got " +
                   py::repr(a).cast<std::string>());
}

std::string type_name(const py::handle& o) { return py::str(o.get_type().attr("__name__")).cast<std::string>(); }

bool is_mapping(const py::handle& o) {
  return py::isinstance(o, py::module_::import("collections.abc").attr("Mapping"));
}

std::string to_json(const std::string& where, const py::handle& value) {
  try {
    return py::module_::import("json").attr("dumps")(value, py::arg("ensure_ascii") = false).cast<std::string>();
  } catch (const py::error_already_set& e) {
    throw ValueError(where + ": not JSON-serialisable (" + py::str(e.value()).cast<std::string>() + ")");
  }
}

std::vector<chat::Part> content_of(size_t i, const py::handle& content) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  if (py::isinstance<py::str>(content)) return {chat::text(utf8_of(content))};
  if (!py::isinstance<py::list>(content) && !py::isinstance<py::tuple>(content))
    throw ValueError(where + ": expected str or a list of items, got " + type_name(content));
  std::vector<chat::Part> parts;
  size_t j = 0;
  for (const py::handle& item : content) {
    const std::string at = where + "[" + std::to_string(j++) + "]";
    const py::object kind = is_mapping(item) ? item.attr("get")("type") : py::none();
    if (!kind.is_none() && py::isinstance<py::str>(kind) && kind.cast<std::string>() == "text") {
      const py::object t = item.attr("get")("text");
      if (!py::isinstance<py::str>(t)) throw ValueError(at + ".text: expected str, got " + type_name(t));
      parts.push_back(chat::text(utf8_of(t)));
    } else if (!kind.is_none() && py::isinstance<py::str>(kind) && kind.cast<std::string>() == "image") {
      // The tile grid rides along as "tiles": (rows, cols); chat.py ignores it (1x1 here by default).
      const py::object tiles = item.attr("get")("tiles", py::make_tuple(1, 1));
      const auto hw = tiles.cast<std::pair<int, int>>();
      parts.push_back(chat::image(hw.first, hw.second));
    } else {
      const std::string got = is_mapping(item) ? py::repr(kind).cast<std::string>() : type_name(item);
      throw ValueError(at + ".type: expected 'text' or 'image', got " + got);
    }
  }
  return parts;
}

std::vector<chat::ToolCall> tool_calls_of(size_t i, const py::handle& msg, const std::string& role) {
  const py::object calls = msg.attr("get")("tool_calls");
  if (calls.is_none()) return {};
  const std::string where = "messages[" + std::to_string(i) + "].tool_calls";
  if (role != "assistant")
    throw ValueError(where + ": only assistant messages can call tools (role is '" + role + "')");
  if (!py::isinstance<py::list>(calls) && !py::isinstance<py::tuple>(calls))
    throw ValueError(where + ": expected a list, got " + type_name(calls));
  std::vector<chat::ToolCall> out;
  size_t j = 0;
  for (const py::handle& call : calls) {
    const std::string at = where + "[" + std::to_string(j++) + "].function";
    const py::object fn = is_mapping(call) ? call.attr("get")("function") : py::none();
    if (fn.is_none() || !is_mapping(fn))
      throw ValueError(at + ": expected {'name': str, 'arguments': dict}, got " + py::repr(call).cast<std::string>());
    const py::object name = fn.attr("get")("name"), args = fn.attr("get")("arguments");
    if (!py::isinstance<py::str>(name)) throw ValueError(at + ".name: expected str, got " + type_name(name));
    if (!is_mapping(args))
      throw ValueError(at + ".arguments: expected a dict (json.loads a JSON string first), got " + type_name(args));
    out.push_back({name.cast<std::string>(), to_json(at + ".arguments", py::dict(args))});
  }
  return out;
}

std::vector<chat::Message> messages_of(const py::object& messages) {
  if (py::isinstance<py::str>(messages) || !(py::isinstance<py::list>(messages) || py::isinstance<py::tuple>(messages)))
    throw ValueError("messages: expected a list of dicts, got " + type_name(messages));
  std::vector<chat::Message> out;
  size_t i = 0;
  for (const py::handle& msg : messages) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!is_mapping(msg))
      throw ValueError(where + ": expected a dict with 'role' and 'content', got " + type_name(msg));
    const py::object role_obj = msg.attr("get")("role");
    // A non-str role is reported as chat.py reports it (its repr); a str role is checked in C++.
    const std::string role = py::isinstance<py::str>(role_obj) ? role_obj.cast<std::string>()
                                                                : py::repr(role_obj).cast<std::string>();
    if (!py::isinstance<py::str>(role_obj))
      throw ValueError(where + ".role: unknown role " + role +
                       " (expected one of system, user, assistant, ipython, tool)");
    chat::Message m{role, {}, {}};
    const bool known = role == "system" || role == "user" || role == "assistant" || role == "ipython" || role == "tool";
    if (!known)  // here, not in chat::encode: chat.py reports it before later messages' mistakes
      throw ValueError(where + ".role: unknown role '" + role +
                       "' (expected one of system, user, assistant, ipython, tool)");
    m.tool_calls = tool_calls_of(i, msg, role);
    const py::object content = msg.attr("get")("content");
    if (role == "ipython" || role == "tool") {
      if (py::isinstance<py::str>(content)) {
        m.content = {chat::text(utf8_of(content))};
      } else if (is_mapping(content) || py::isinstance<py::list>(content) || py::isinstance<py::tuple>(content)) {
        m.content = {chat::json(to_json(where + ".content", content))};
      } else {
        throw ValueError(where + ".content: a tool result must be str, dict or list, got " + type_name(content));
      }
    } else if (!(content.is_none() && !m.tool_calls.empty())) {  // a tool call may have no content
      m.content = content_of(i, content);
    }
    out.push_back(std::move(m));
    ++i;
  }
  return out;
}

}  // namespace

void register_text(py::module_& m) {
  py::class_<Tokenizer>(m, "Tokenizer", "The C++ Llama 4 tokenizer (tiktoken BPE + PCRE2 o200k regex)")
      .def(py::init<const std::string&>(), py::arg("path"))
      .def_static("from_checkpoint", &Tokenizer::from_checkpoint, py::arg("path"))
      .def(
          "encode",
          [](const Tokenizer& t, const py::object& text, const py::object& allowed_special) {
            const std::string s = utf8_of(text);
            const AllowedSpecial allowed = allowed_of(allowed_special);
            py::gil_scoped_release release;
            return t.encode(s, allowed);
          },
          py::arg("text"), py::arg("allowed_special") = "none")
      .def(
          "decode",
          [](const Tokenizer& t, const std::vector<int32_t>& ids, bool skip) { return t.decode(ids, skip); },
          py::arg("ids"), py::arg("skip_special_tokens") = false)
      .def(
          "decode_bytes",
          [](const Tokenizer& t, const std::vector<int32_t>& ids, bool skip) {
            return py::bytes(t.decode_bytes(ids, skip));
          },
          py::arg("ids"), py::arg("skip_special_tokens") = false)
      .def("token_bytes", [](const Tokenizer& t, int32_t id) { return py::bytes(std::string(t.token_bytes(id))); })
      .def("special_token_id", &Tokenizer::special_token_id, py::arg("name"))
      .def("is_special", &Tokenizer::is_special)
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size)
      .def_property_readonly("bos_id", &Tokenizer::bos_id)
      .def_property_readonly("eos_id", &Tokenizer::eos_id)
      .def_property_readonly("eot_id", &Tokenizer::eot_id)
      .def_property_readonly("eom_id", &Tokenizer::eom_id)
      .def_property_readonly("pad_id", &Tokenizer::pad_id)
      .def_property_readonly("stop_ids", &Tokenizer::stop_ids)
      .def_property_readonly("source", &Tokenizer::source)
      .def(
          "chat",
          [](const Tokenizer& t, const py::object& messages, bool add_generation_prompt, bool expand_images,
             int patches_per_tile) {
            chat::Options o;
            o.add_generation_prompt = add_generation_prompt;
            o.expand_images = expand_images;
            o.patches_per_tile = patches_per_tile;
            return chat::encode(t, messages_of(messages), o);
          },
          py::arg("messages"), py::arg("add_generation_prompt") = true, py::arg("expand_images") = true,
          py::arg("patches_per_tile") = 144);

  py::class_<IncrementalDecoder>(m, "IncrementalDecoder", "Streaming detokeniser (never splits a character)")
      .def(py::init<Tokenizer, bool>(), py::arg("tokenizer"), py::arg("skip_special_tokens") = false)
      .def("feed", &IncrementalDecoder::feed, py::arg("token_id"))
      .def("flush", &IncrementalDecoder::flush)
      .def("reset", &IncrementalDecoder::reset);

  m.def(
      "render_chat",
      [](const py::object& messages, bool add_generation_prompt) {
        return chat::render(messages_of(messages), add_generation_prompt);
      },
      py::arg("messages"), py::arg("add_generation_prompt") = true);
  m.def("image_token_ids", [](int h, int w, int ppt) { return chat::image_token_ids(h, w, ppt); },
        py::arg("tiles_h"), py::arg("tiles_w"), py::arg("patches_per_tile"));
  m.def(
      "expand_image_tokens",
      [](const std::vector<int32_t>& ids, const std::vector<std::pair<int, int>>& tiles, int ppt) {
        return chat::expand_image_tokens(ids, tiles, ppt);
      },
      py::arg("ids"), py::arg("tiles_per_image"), py::arg("patches_per_tile"));
  m.def("num_patches_per_tile", &chat::num_patches_per_tile, py::arg("image_size") = 336,
        py::arg("patch_size") = 14, py::arg("pixel_shuffle_ratio") = 0.5);
  m.def("special_token_names", &special_token_names);
  m.def("utf8_replace_invalid", [](const py::bytes& b) { return py::bytes(utf8_replace_invalid(std::string(b))); });
  m.def("utf8_find_invalid", [](const py::bytes& b) -> py::object {
    const size_t at = utf8_find_invalid(std::string(b));
    return at == std::string_view::npos ? py::object(py::none()) : py::object(py::int_(at));
  });
  // For the tests: the pattern string and Meta's long-run cutting on their own.
  m.attr("_o200k_pattern") = py::str(static_cast<const char*>(text::kO200kPattern));
  m.attr("_pcre2_unicode_version") = py::str(text::pcre2_unicode_version());
  m.def("_split_long_runs", [](const py::str& s, size_t max_run) {
    const std::string u = utf8_of(s);
    std::vector<std::string> out;
    for (std::string_view piece : text::split_long_runs(u, max_run)) out.emplace_back(piece);
    return out;
  });
}

}  // namespace llama4::python
