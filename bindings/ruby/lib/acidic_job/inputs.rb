# frozen_string_literal: true

module AcidicJob
  # The checks of values handed to the core, so a bad one is an InvalidArgument that says
  # which value it is, not an ArgumentError, RangeError, FloatDomainError or encoding
  # error from the layers on the way (a C string, an Integer conversion, the encoders).
  module Inputs
    INT64_MAX = (2**63) - 1

    module_function

    # A text the core takes as a C string: valid in its encoding, without a NUL byte.
    def text(value, what)
      string = value.to_s
      raise InvalidArgument, "#{what} is not valid #{string.encoding}: #{string.inspect}" unless string.valid_encoding?
      raise InvalidArgument, "#{what} contains a NUL byte: #{string.inspect}" if string.include?("\0")

      string
    end

    # Seconds (a number, or a numeric string) as the core's milliseconds; nil stays nil.
    # A time past what 64 bits of milliseconds hold (Float::INFINITY too) is the longest
    # one, as in the Python package (the core saturates); NaN and what is not a number
    # are refused. The core judges the range (e.g. a negative lock timeout).
    def milliseconds(seconds, what)
      return nil if seconds.nil?

      value = Float(seconds)
      raise InvalidArgument, "#{what} must be a number of seconds, not #{seconds.inspect}" if value.nan?

      ms = value * 1000
      return INT64_MAX if ms >= INT64_MAX
      return -INT64_MAX if ms <= -INT64_MAX

      ms.round
    rescue ArgumentError, TypeError
      raise InvalidArgument, "#{what} must be a number of seconds, not #{seconds.inspect}"
    end
  end
end
