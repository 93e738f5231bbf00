# frozen_string_literal: true

module AcidicJob
  VERSION = "0.9.0"
end
