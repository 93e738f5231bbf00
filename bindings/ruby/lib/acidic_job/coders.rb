# frozen_string_literal: true

require "yaml"
require "json"

module AcidicJob
  # The YAML coder of the models' serialized columns. It reads like Rails' YAMLColumn
  # (only strings starting with "---" are YAML) but without Rails 6.1.6.1's safe loading:
  # acidic_job 0.7.0 stored exceptions and arbitrary job arguments in these columns, and
  # those rows must read back with their classes. The columns are written only by the
  # application and acidic_job itself.
  module YAMLCoder
    module_function

    def dump(obj)
      return if obj.nil?

      YAML.dump(obj)
    end

    def load(yaml)
      return yaml unless yaml.is_a?(String) && yaml.start_with?("---")

      YAML.respond_to?(:unsafe_load) ? YAML.unsafe_load(yaml) : YAML.load(yaml) # rubocop:disable Security/YAMLLoad
    end
  end

  # `workflow`: the core writes JSON (a YAML flow mapping); 0.7.0 wrote YAML. Both read
  # back as a Hash; it is written as JSON so that the row stays in the core's format.
  module WorkflowCoder
    module_function

    def dump(obj)
      return if obj.nil?

      JSON.generate(obj.as_json)
    end

    def load(text)
      return nil if text.nil? || text.empty?
      return YAMLCoder.load(text) if text.start_with?("---")

      JSON.parse(text)
    rescue JSON::ParserError
      YAML.respond_to?(:unsafe_load) ? YAML.unsafe_load(text) : YAML.load(text) # rubocop:disable Security/YAMLLoad
    end
  end

  # The documents handed to the core, encoded exactly as 0.7.0's columns encode them, so
  # that rows written by either read back through the models.
  module Documents
    module_function

    # `serialize :job_args`. A job without arguments is written as YAML.dump writes an empty
    # Array, without Psych (its emitter costs as much for `[]` as a step's own encoding).
    EMPTY_ARGS = "--- []\n"

    def job_args(args)
      return EMPTY_ARGS if args.instance_of?(Array) && args.empty? && args.instance_variables.empty?

      YAMLCoder.dump(args)
    end

    # An ActiveJob's serialization (JSON-safe by construction: strings, numbers, booleans,
    # nil, arrays, hashes) as YAML written through the JSON generator: a YAML flow
    # document that `serialize :job_args` reads back as YAML.dump's would, at a fraction
    # of Psych's cost (it is encoded for every run, as its resume description).
    # Characters a YAML reader does not take raw inside a quoted scalar (it folds line
    # separators, refuses non-printables): such documents take the slow path.
    NOT_YAML_RAW = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/.freeze

    def serialized_job(data)
      flow_document(JSON.generate(data)) || YAMLCoder.dump(data)
    end

    # JSON as a YAML flow document; nil when a YAML reader would not take it raw. Of those
    # characters only DEL is ASCII, and an ASCII-only string answers without the regexp
    # (7.6 us for a job's 266-byte description, 6 times a 3-step job).
    def flow_document(json)
      raw = json.ascii_only? ? !json.include?("\u007f") : !json.match?(NOT_YAML_RAW)
      "--- #{json}\n" if raw
    end

    # `obj` as such a flow document when it holds JSON's types only, so that YAML.load
    # returns an equal object: nil, true, false, Integer, finite Float, UTF-8 String, and
    # Arrays and string-keyed Hashes of them (no subclass, no instance variable: Psych
    # tags those). nil for anything else, which YAML.dump writes. The check is the
    # extension's (a walk in Ruby cost more than generating the JSON).
    def flow(obj)
      return unless Native.json_types?(obj)

      flow_document(JSON.generate(obj))
    rescue JSON::GeneratorError, EncodingError
      nil
    end

    # A staged job's payload: serialized_job's documents through the JSON parser (their
    # inverse), anything else (0.7.0's rows, YAML.dump) through YAML.
    def load_job(doc)
      if doc.start_with?("--- {") && doc.end_with?("}\n")
        begin
          return JSON.parse(doc[4..])
        rescue JSON::ParserError
          nil # a YAML flow mapping that is not JSON
        end
      end
      YAMLCoder.load(doc)
    end

    # `store :attr_accessors` (Rails' store dumps a plain Hash with string keys). They are
    # written at every step that changes them: as a flow document when they allow it
    # (Psych took an eighth of a 3-step job's time).
    def attributes(hash)
      doc = hash.to_hash.transform_keys(&:to_s)
      flow(doc) || YAMLCoder.dump(doc)
    end

    def load_attributes(doc)
      obj = doc.nil? ? nil : YAMLCoder.load(doc)
      obj.is_a?(Hash) ? obj.transform_keys(&:to_s) : {}
    end

    # `serialize :error_object`: the exception itself. An exception holding something YAML
    # cannot round-trip (a Proc, an IO) is stored as an exception of the same class with
    # the same message and backtrace when that is possible, else as a RuntimeError naming
    # the class: the row must always read back.
    def error(exception)
      round_trip(exception)
    rescue StandardError, ScriptError
      begin
        copy = exception.class.allocate
        copy.send(:initialize, exception.message)
        copy.set_backtrace(exception.backtrace) if exception.backtrace
        round_trip(copy)
      rescue StandardError, ScriptError
        fallback = RuntimeError.new("#{exception.class}: #{exception.message}")
        fallback.set_backtrace(exception.backtrace) if exception.backtrace
        YAMLCoder.dump(fallback)
      end
    end

    # The error document of a failure the core detected itself (an unknown recovery point,
    # a lost connection): the YAML of the AcidicJob::Error subclass for its code, so that
    # `key.error_object` reads back as an exception like a step's own.
    def core_error(code_name, message)
      error = Native.error_class(Native::CODES.fetch(code_name, Native::CODES[:AJ_ERROR])).new(message)
      error.instance_variable_set(:@code, code_name)
      YAMLCoder.dump(error)
    end

    def round_trip(obj)
      doc = YAMLCoder.dump(obj)
      YAMLCoder.load(doc)
      doc
    end
  end
end
