# The ros-jazzy-* PyPI wheels export the include paths of the machine that BUILT them
# (/opt/python/cp3XX-cp3XX/...) in their *__rosidl_generator_py targets; CMake refuses non-existent
# include paths. Point those at this interpreter's headers and NumPy. A no-op on apt/source ROS installs.
# Include it after rosidl_generate_interfaces() (which imports those targets), in every interface package
# that scripts/setup.sh builds against the wheels: this one, interfaces/unitree_hg, interfaces/unitree_go.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
get_directory_property(_imported_targets IMPORTED_TARGETS)
foreach(_target IN LISTS _imported_targets)
  get_target_property(_includes ${_target} INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT _includes)
    continue()
  endif()
  set(_fixed "")
  set(_changed FALSE)
  foreach(_dir IN LISTS _includes)
    if(NOT _dir MATCHES "^\\$<" AND NOT EXISTS "${_dir}" AND _dir MATCHES "/numpy/")
      list(APPEND _fixed ${Python3_NumPy_INCLUDE_DIRS})
      set(_changed TRUE)
    elseif(NOT _dir MATCHES "^\\$<" AND NOT EXISTS "${_dir}" AND _dir MATCHES "/include/python3")
      list(APPEND _fixed ${Python3_INCLUDE_DIRS})
      set(_changed TRUE)
    else()
      list(APPEND _fixed "${_dir}")
    endif()
  endforeach()
  if(_changed)
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
  endif()
endforeach()
