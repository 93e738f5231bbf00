# frozen_string_literal: true

require_relative "test_helper"
require "bigdecimal"
require "date"

# The attributes document (`attr_accessors`): JSON's types are written as a YAML flow
# document, which YAML.load (0.7.0's reader, the models') must read back as an equal object
# of the same classes; everything else goes through YAML.dump as before.
class DocumentsTest < AcidicTest
  Docs = AcidicJob::Documents

  # Equal, and of the same classes all the way down (1 == 1.0 in Ruby).
  def same?(a, b)
    return false unless a.instance_of?(b.class)

    case a
    when Hash then a.size == b.size && a.all? { |k, v| b.key?(k) && same?(k, b.keys[b.keys.index(k)]) && same?(v, b[k]) }
    when Array then a.size == b.size && a.zip(b).all? { |x, y| same?(x, y) }
    when Float then [a].pack("G") == [b].pack("G")
    when String then a == b && utf8?(a) == utf8?(b)
    else a == b
    end
  end

  def utf8?(str) = [Encoding::UTF_8, Encoding::US_ASCII].include?(str.encoding)

  def read(doc) = YAML.unsafe_load(doc)

  def assert_reads_back(attrs, flow:)
    doc = Docs.attributes(attrs)
    assert_equal flow, doc.start_with?("--- {"), "#{attrs.inspect} as #{doc.inspect}"
    assert_equal YAML.dump(attrs.transform_keys(&:to_s)), doc unless flow
    back = read(doc)
    assert same?(attrs.transform_keys(&:to_s), back), "#{attrs.inspect} read back as #{back.inspect} from #{doc.inspect}"
    assert_equal back, AcidicJob::Documents.load_attributes(doc)
  end

  TRICKY_STRINGS = [
    "", " ", "yes", "no", "on", "off", "y", "n", "~", "null", "true", "1", "1.0", "0x1f", "0o17",
    "1_000", "1e5", ".inf", "-.inf", ".nan", "2026-12-01", "12:30:00", ":sym", "- a", "a: b",
    "{a: 1}", "[1]", "#c", "&a", "*a", "!tag", "%x", "@x", "`x", "|", ">", "'", "\"", "\\",
    "a\\nb", "a\nb", "a\r\nb", "\t", "\u0000", "\u0001\u001f", "\u00a0", "é", "日本語", "😀",
    "\u00ff", "\ud7ff", "\ue000", "\ufffd", "--- x", "...", "---", "a # b", "/", "</script>"
  ].freeze

  def test_json_types_are_a_flow_document_read_back_equal
    TRICKY_STRINGS.each { |s| assert_reads_back({ "v" => s, s => 1 }, flow: true) }
    [0, -1, 2**62, 2**64, -(2**100), 1.5, -0.0, 0.0, 1e20, 1e-5, 1.0e-320, Float::MAX, Float::MIN,
     123_456_789.123, true, false, nil].each { |v| assert_reads_back({ "v" => v }, flow: true) }
    assert_reads_back({}, flow: true)
    assert_reads_back({ ride_a: 1, "ride_b" => nil }, flow: true) # the step's attributes
    assert_reads_back({ "a" => [1, [2.5, nil, { "b" => ["c", {}] }], []], "d" => { "e" => { "f" => true } } }, flow: true)
  end

  def test_other_values_keep_their_classes_through_yaml_dump
    [:sym, Time.utc(2026, 12, 1, 12, 30, 1.5), Date.new(2026, 12, 1), BigDecimal("1.25"), 1..3,
     Float::NAN.then { nil }, Float::INFINITY, -Float::INFINITY, "bin\xff".b, "ascii".encode("US-ASCII").b,
     "\u2028", "\u2029", "\u0085", "\u007f", "\ufeff", "\ufffe", "\uffff",
     ActiveSupport::HashWithIndifferentAccess.new("a" => 1), { a: 1 }, { 1 => "one" },
     ActiveSupport::SafeBuffer.new("safe"), Struct.new(:x).new(1).then { nil }, [1, :two],
     Class.new(Array).new([1]).then { nil }].compact.each do |v|
      doc = Docs.attributes("v" => v)
      refute doc.start_with?("--- {"), "#{v.inspect} went to the flow document #{doc.inspect}"
      assert_equal YAML.dump("v" => v), doc
    end
    ride = Ride.create!(user: "ada")
    assert_equal YAML.dump("ride" => ride), Docs.attributes(ride: ride)
    assert_equal ride, read(Docs.attributes(ride: ride))["ride"]
    recursive = [1]
    recursive << recursive
    assert_equal YAML.dump("r" => recursive), Docs.attributes("r" => recursive)
  end

  # What Psych tags stays out of the flow document at any depth: an
  # instance variable on a String, an Array or a Hash, a subclass, bytes invalid in the
  # String's encoding, nesting deeper than 32 containers. A singleton class tags nothing.
  def test_what_psych_would_tag_goes_through_yaml_dump_at_any_depth
    with_ivar = ->(v) { v.tap { |o| o.instance_variable_set(:@note, 1) } }
    tagged = [with_ivar.call(+"s"), with_ivar.call([1]), with_ivar.call({ "a" => 1 }), "bad\xff".dup.force_encoding("UTF-8"),
              "caf\xc3\xa9".dup.force_encoding("US-ASCII"), ActiveSupport::SafeBuffer.new("sub"),
              ActiveSupport::HashWithIndifferentAccess.new("a" => 1)]
    outcome = lambda do |&encode|
      encode.call
    rescue ArgumentError, EncodingError => e
      e.class # Psych refuses invalid bytes; the runner reports it as the caller's input error
    end
    tagged.each do |v|
      [{ "v" => v }, { "v" => [1, { "w" => [v] }] }].each do |attrs|
        doc = outcome.call { Docs.attributes(attrs) }
        refute doc.to_s.start_with?("--- {"), "#{attrs.inspect} went to the flow document #{doc.inspect}"
        assert_equal outcome.call { YAML.dump(attrs) }, doc
      end
    end
    assert_reads_back({ "v" => "x".dup.tap { |o| o.singleton_class }, "w" => [].tap { |o| def o.extra = 1 } }, flow: true)

    nest = ->(n) { (1..n).reduce(1) { |inner, i| i.odd? ? [inner] : { "d" => inner } } }
    assert_reads_back({ "v" => nest.call(31) }, flow: true) # 32 containers with the top Hash
    assert_reads_back({ "v" => nest.call(32) }, flow: false)
  end

  def random_string(rng)
    Array.new(rng.rand(0..12)) do
      case rng.rand(60)
      when 0..19 then rng.rand(0x00..0x7f)
      when 20..29 then rng.rand(0x80..0x7ff)
      when 30 then [0x85, 0x2028, 0x2029, 0xfeff, 0xfffe, 0xffff, 0x7f, 0x9f, 0xa0].sample(random: rng)
      when 31..39 then rng.rand(0x800..0xd7ff)
      when 40..49 then rng.rand(0xe000..0x10ffff)
      else " -:#&*!|>'\"%@`,[]{}?~\\\n\t".chars.sample(random: rng).ord
      end
    end.pack("U*")
  end

  def random_value(rng, depth)
    case rng.rand(depth > 3 ? 6 : 8)
    when 0 then nil
    when 1 then rng.rand(2).zero?
    when 2 then rng.rand(-(2**70)..2**70) >> rng.rand(0..70)
    when 3 then [rng.rand * 10**rng.rand(-320..308), -rng.rand, rng.rand(-1e6..1e6).round(rng.rand(0..6))].sample(random: rng)
    when 4, 5 then random_string(rng)
    when 6 then Array.new(rng.rand(0..4)) { random_value(rng, depth + 1) }
    else Array.new(rng.rand(0..4)) { [random_string(rng), random_value(rng, depth + 1)] }.to_h
    end
  end

  def test_random_json_documents_read_back_equal
    rng = Random.new(Integer(ENV.fetch("AJ_TEST_SEED", 20_261_201)))
    flows = 0
    1500.times do
      attrs = Array.new(rng.rand(0..5)) { [random_string(rng), random_value(rng, 0)] }.to_h
      doc = Docs.attributes(attrs)
      flows += 1 if doc.start_with?("--- {")
      back = read(doc)
      assert same?(attrs, back), "#{attrs.inspect} read back as #{back.inspect} from #{doc.inspect}"
    end
    assert_operator flows, :>, 500 # most documents are JSON's types only
  end

  # A run whose attributes hold such values resumes with them equal.
  class FlowAttributesJob < ActiveJob::Base
    include AcidicJob
    cattr_accessor :seen

    def perform
      idempotently(with: { value: nil }) do
        step :set
        step :check
      end
    end

    def set
      self.value = { "text" => "yes: \"no\"\n😀", "n" => [1, 2.5, -0.0, 2**70, nil, true] }
    end

    def check
      raise "first attempt" if self.class.seen.nil? && (self.class.seen = :failed)

      self.class.seen = value
    end
  end

  def test_a_run_resumes_with_its_attributes_equal
    FlowAttributesJob.seen = nil
    job = FlowAttributesJob.new
    assert_raises(RuntimeError) { job.perform_now }
    key = AcidicJob::Key.find_by(idempotency_key: job.job_id)
    raw = key.class.connection.select_value("SELECT attr_accessors FROM acidic_job_keys WHERE id = #{key.id}")
    assert raw.start_with?("--- {"), raw
    FlowAttributesJob.new.tap { |again| again.job_id = job.job_id }.perform_now
    expected = { "text" => "yes: \"no\"\n😀", "n" => [1, 2.5, -0.0, 2**70, nil, true] }
    assert same?(expected, FlowAttributesJob.seen), FlowAttributesJob.seen.inspect
    assert_equal expected, key.reload.attr_accessors["value"]
  end

  # job_args: a job without arguments skips Psych, writing what YAML.dump writes (0.7.0's
  # readers and queries of the serialized column match it); anything else is YAML.dump's.
  class TaggedArray < Array; end

  def test_job_args_without_arguments_are_what_yaml_dump_writes
    assert_equal YAML.dump([]), Docs.job_args([])
    assert_equal [], read(Docs.job_args([]))
    with_ivar = [].tap { |a| a.instance_variable_set(:@note, 1) }
    [TaggedArray.new, with_ivar, [nil], {}, nil].each do |args|
      assert_equal AcidicJob::YAMLCoder.dump(args), Docs.job_args(args), args.inspect
    end
    assert_instance_of TaggedArray, read(Docs.job_args(TaggedArray.new))
  end

  class NoArgumentsJob < ActiveJob::Base
    include AcidicJob

    def perform
      idempotently { step :only }
    end

    def only; end
  end

  def test_a_job_without_arguments_stores_them_as_yaml_dump_does
    job = NoArgumentsJob.new
    job.perform_now
    key = AcidicJob::Key.find_by(idempotency_key: job.job_id)
    raw = key.class.connection.select_value("SELECT job_args FROM acidic_job_keys WHERE id = #{key.id}")
    assert_equal YAML.dump([]), raw
    assert_equal [], key.job_args
    assert_equal "FINISHED", key.recovery_point
  end
end
